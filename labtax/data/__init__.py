"""The data contract between the stages: what `labtax diff-generate` writes and `train`/`eval` read.

  names.py     the set file names, the manifest's name, the store format version
  sample.py    the sample record (one JSONL line of a set) and the one reader of set files
  manifest.py  the manifest record, its one reader and its one writer
  facts.py     the key facts of a text (numbers, dates, names) and the extractive check on them

The generation side (`mix/mix.py`) writes through it, `train/data.py` and `eval/data.py` read
through it; nothing else parses a set file or the manifest. It imports no stage.
"""

from __future__ import annotations

from labtax.data.manifest import (
    FaultSummary,
    GenerationStats,
    LeafEntry,
    Manifest,
    RunSummary,
    SetFile,
    read_manifest,
    write_manifest,
)
from labtax.data.names import (
    MANIFEST,
    PHASE1,
    PHASE1_STEP1,
    PHASE1_STEP2,
    PHASE2,
    PHASE_FILES,
    SET_FILES,
    STEP_FILES,
    STORE_FORMAT,
    TEST,
    VALIDATION,
    leaf_folder,
)
from labtax.data.sample import Message, Sample, SampleMetadata, TestRow, read_set

__all__ = [
    "MANIFEST",
    "PHASE1",
    "PHASE1_STEP1",
    "PHASE1_STEP2",
    "PHASE2",
    "PHASE_FILES",
    "SET_FILES",
    "STEP_FILES",
    "STORE_FORMAT",
    "TEST",
    "VALIDATION",
    "FaultSummary",
    "GenerationStats",
    "LeafEntry",
    "Manifest",
    "Message",
    "RunSummary",
    "Sample",
    "SampleMetadata",
    "SetFile",
    "TestRow",
    "leaf_folder",
    "read_manifest",
    "read_set",
    "write_manifest",
]
