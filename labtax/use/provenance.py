"""Where a model came from, as far as chat and export need it: the system turn it was trained with.

`labtax train` writes `labtax_data.json` into every checkpoint (train/model_card.py): the data folder,
the system turn its sets begin with, the taxonomy commit and the teacher. A chat or an Ollama
Modelfile then starts with the same system turn the model learned under, not the template's default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtax.models import adapter_base, is_adapter_dir
from labtax.train.model_card import DATA_RECORD, sets_system_prompt


@dataclass(frozen=True)
class SystemTurn:
    text: str | None  # None: no system turn is sent (the chat template's default applies)
    source: str  # where it came from, said once when a chat starts


def read_data_record(model: str) -> dict[str, Any] | None:
    """The model folder's `labtax_data.json`; for an adapter without one, its base's."""
    path = Path(model) / DATA_RECORD
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None
    if is_adapter_dir(model):
        return read_data_record(adapter_base(model))
    return None


def system_turn(model: str, *, explicit: str | None = None, data_dir: Path | None = None) -> SystemTurn:
    """The system turn to chat with: `--system`, else the one `--data`'s sets begin with, else the one
    the checkpoint records, else none."""
    if explicit is not None:
        return SystemTurn(explicit or None, "--system")
    if data_dir is not None:
        return SystemTurn(sets_system_prompt(data_dir), f"the sets in {data_dir}")
    record = read_data_record(model)
    if record is not None and "system_prompt" in record:
        return SystemTurn(record["system_prompt"] or None, f"the training data ({DATA_RECORD})")
    return SystemTurn(None, "none known: the chat template's default")
