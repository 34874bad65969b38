"""`labtax validate --fix`: mechanical findings repaired in place, comments and layout kept."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from labtax.cli import cli
from labtax.taxonomy.fix import check_fix, fix_text

HERE = Path(__file__).parent
HAIKU = "compositional_skills/writing/poetry/haiku"
SKILL = (HERE / "examples" / "good" / HAIKU / "qna.yaml").read_text()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def write_leaf(root: Path, text: str) -> Path:
    path = root / HAIKU / "qna.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    (path.parent / "attribution.txt").write_text("Title: haiku\nLicense: CC-BY-4.0\n")
    return path


def messy(text: str) -> str:
    """The good leaf with a comment, trailing spaces (also inside a block scalar) and no final newline."""
    lines = text.rstrip("\n").split("\n")
    lines.insert(1, "# reviewed by the poetry group   ")
    lines[3] += "  "  # task_description line
    lines[7] += " \t"  # a line of the first answer's block scalar
    return "\n".join(lines)


def test_fix_turns_messy_leaf_into_clean_one_comments_kept(tmp_path: Path) -> None:
    path = write_leaf(tmp_path, messy(SKILL))
    code, out = run("--taxonomy", str(tmp_path))
    assert code == 1 and "[yaml-trailing-space]" in out and "[yaml-final-newline]" in out

    code, out = run("--taxonomy", str(tmp_path), "--fix")
    assert code == 1, out  # pre-commit's convention: files were changed
    assert f"{HAIKU}/qna.yaml: fixed yaml-trailing-space, yaml-final-newline" in out
    fixed = path.read_text()
    assert "# reviewed by the poetry group\n" in fixed
    assert fixed == SKILL.replace("version: 3\n", "version: 3\n# reviewed by the poetry group\n", 1)

    code, out = run("--taxonomy", str(tmp_path))
    assert code == 0 and "error" not in out
    # Nothing left to fix: --fix exits 0 and leaves the file alone.
    mtime = path.stat().st_mtime_ns
    code, out = run("--taxonomy", str(tmp_path), "--fix")
    assert code == 0 and "fixed" not in out and path.stat().st_mtime_ns == mtime


def test_fix_crlf_and_tab_indentation(tmp_path: Path) -> None:
    text = SKILL.replace("\n  - question: Write a haiku about a lighthouse", "\n\t- question: Write a haiku about a lighthouse")
    path = write_leaf(tmp_path, text.replace("\n", "\r\n"))
    code, out = run("--taxonomy", str(tmp_path))
    assert code == 1 and "[yaml-tab]" in out
    code, out = run("--taxonomy", str(tmp_path), "--fix")
    assert code == 1 and "yaml-newline" in out and "yaml-tab" in out
    assert path.read_bytes() == SKILL.encode()
    code, out = run("--taxonomy", str(tmp_path))
    assert code == 0 and "error" not in out


def test_tab_inside_block_scalar_is_data_and_kept() -> None:
    before = "a: |\n  \tindented by a tab in the text\nb: 1  \n"
    after, rules = fix_text(before)
    assert "yaml-tab" in rules and check_fix(before, after) is not None  # would change the value
    after, rules = fix_text(before, tabs=False)
    assert rules == ["yaml-trailing-space"] and check_fix(before, after) is None
    assert after == "a: |\n  \tindented by a tab in the text\nb: 1\n"


def test_fix_only_touches_the_given_paths_and_skips_unparsable(tmp_path: Path) -> None:
    path = write_leaf(tmp_path, "version: 3\nkey: [unclosed  \n")
    code, out = run("--taxonomy", str(tmp_path), "--fix", str(path))
    assert code == 1 and "not fixed: the fixed file would not parse" in out
    assert path.read_text() == "version: 3\nkey: [unclosed  \n"


FOLDED = """version: 3
task_description: Write haiku.
created_by: tester
seed_examples:
""" + "".join(f"""  - question: >-
      Write haiku number {i}{'   ' if i == 0 else ''}
      about the sea{' ' if i == 1 else ''}
      and its tides.
    answer: >-
      Salt wind, wave {i}.\t
      Foam on the rocks.
""" for i in range(5))


def test_fix_a_folded_scalar_with_trailing_spaces(tmp_path: Path) -> None:
    # `>-` joins the lines with spaces, so the loaded strings held "number 0    about": the check
    # compared them with the fixed "number 0 about" and refused a fix that changes no word.
    path = write_leaf(tmp_path, FOLDED)
    code, out = run("--taxonomy", str(tmp_path), "--fix")
    assert code == 1 and "fixed yaml-trailing-space" in out and "not fixed" not in out, out
    assert path.read_text() == "\n".join(line.rstrip(" \t") for line in FOLDED.split("\n"))
    assert check_fix(FOLDED, FOLDED.replace("about the sea", "about the lake")) is not None  # a word is data

