"""Shared fixtures: the ../shared folder (real data and weights) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GRAPHKIT_SHARED", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared material beside the checkout; tests that need it skip where it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): real data and weights are not available")
    return SHARED


@pytest.fixture(scope="session")
def librispeech(shared: Path) -> Path:
    path = shared / "data" / "librispeech-test-other-10spk"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
