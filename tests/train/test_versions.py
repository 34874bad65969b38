"""The run-time floors: what is installed passes, an older version is a one-line usage error."""

from __future__ import annotations

import pytest

from labtax.errors import UsageError
from labtax.train import versions


def test_installed_versions_pass() -> None:
    versions.check_training_versions()


def test_version_parsing() -> None:
    assert versions._version("2.13.0+cpu") == (2, 13)
    assert versions._version("5.0.0.dev0") == (5, 0)
    assert versions._version("4.9.1") < versions.TRANSFORMERS_FLOOR


def test_an_old_torch_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch, "__version__", "2.4.1")
    with pytest.raises(UsageError, match=r"torch >= 2\.6 .*installed: 2\.4\.1"):
        versions.check_training_versions()
