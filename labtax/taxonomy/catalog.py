"""Every rule labtax validate can report: id, default severity, one-line description.

Used by the SARIF reporter (rule metadata), the docs, and the config loader (to reject unknown ids).
"""

from __future__ import annotations

# id -> (default severity, description). "varies" rules take their severity from the file's version.
RULES: dict[str, tuple[str, str]] = {
    "file-unreadable": ("error", "The file could not be opened or read."),
    "file-not-regular": ("error", "A qna.yaml that is a directory, FIFO or other non-regular file."),
    "file-too-large": ("error", "The file is larger than the size limit (default 1 MiB)."),
    "symlink-outside": ("error", "A qna.yaml symlink that points outside the taxonomy repository."),
    "leaf-filename": ("error", "A leaf file not named exactly qna.yaml (e.g. qna.yml, QNA.yaml)."),
    "leaf-location": ("error", "A qna.yaml outside knowledge/, compositional_skills/ or foundational_skills/."),
    "encoding": ("error", "The file is not valid UTF-8."),
    "yaml-syntax": ("error", "The file is not valid YAML (or holds more than one document)."),
    "yaml-tab": ("error", "A tab character used for indentation."),
    "yaml-tag": ("error", "An explicit YAML tag labtax does not construct (e.g. !!python/object)."),
    "yaml-key": ("error", "A mapping key that is not a plain scalar."),
    "yaml-alias-limit": ("error", "YAML aliases that expand past the node limit, or form a cycle (alias bomb)."),
    "yaml-empty": ("error", "The file holds no YAML document."),
    "yaml-not-mapping": ("error", "The top of the document is a list or a scalar, not a mapping."),
    "yaml-duplicate-key": ("varies", "A key defined twice in one mapping (error from version 2 on)."),
    "yaml-trailing-space": ("varies", "Whitespace at the end of a line (error from version 2 on)."),
    "yaml-final-newline": ("varies", "No newline at the end of the file (error from version 2 on)."),
    "yaml-newline": ("warning", "Windows (\\r\\n) line endings."),
    "version": ("error", "version is not an integer, or not a supported version (1, 2 or 3)."),
    "knowledge-version": ("error", "A knowledge leaf that declares version 1 or 2: knowledge requires version 3."),
    "schema-required": ("error", "A required key is missing."),
    "schema-type": ("error", "A value has the wrong type."),
    "schema-const": ("error", "A value differs from the only allowed one."),
    "schema-enum": ("error", "A value is not one of the allowed ones."),
    "schema-min-length": ("error", "A text value is empty."),
    "schema-min-items": ("error", "A list has too few items (e.g. fewer than 5 seed examples)."),
    "schema-unique-items": ("error", "A list repeats an item."),
    "schema-unknown-key": ("error", "A key the schema does not allow."),
    "attribution": ("error", "No non-empty attribution.txt beside a qna.yaml of version 2 or later."),
    "document-pattern": ("error", "A knowledge document pattern that is absolute or climbs out with '..'."),
    "document-git-dir": ("error", "A knowledge document folder or pattern inside a .git directory."),
    "duplicate-question": ("warning", "The same question appears twice with different answers."),
    "grounded-context": ("warning", "A skill gives a context on some examples but not all."),
    "document-repo": ("warning", "document.repo is not an https/ssh/git/file URL nor a path in the repository."),
    "document-commit": ("warning", "document.commit is not a full 40-character SHA."),
    "word-limit": ("warning", "A context over 500 words, a Q&A over 250, or skill seeds over 2,300 in all."),
    "unknown-key": ("warning", "An extra key in a knowledge question-and-answer (tolerated, ignored)."),
}


def default_level(rule: str) -> str:
    level = RULES.get(rule, ("error", ""))[0]
    return "error" if level == "varies" else level
