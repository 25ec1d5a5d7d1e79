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


@pytest.fixture(scope="session")
def ecapa_emitted(tmp_path_factory) -> Path:
    """`graphkit apply recipes/ecapa.yaml` once per test session (all six batch sizes)."""
    pytest.importorskip("torch")
    from graphkit.cli import main

    out = tmp_path_factory.mktemp("ecapa") / "out"
    assert main(["-q", "apply", str(ROOT / "recipes" / "ecapa.yaml"), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def ecapa_bs1(request, tmp_path_factory) -> Path:
    """An ECAPA output folder holding at least the batch-1 model, for tests that need one: where
    the slow tests run, the one they build with every batch size; else `graphkit apply
    recipes/ecapa.yaml --batch 1` alone (seconds, not the six sizes' half minute)."""
    pytest.importorskip("torch")
    if "not slow" not in (request.config.getoption("markexpr") or ""):
        return request.getfixturevalue("ecapa_emitted")
    from graphkit.cli import main

    out = tmp_path_factory.mktemp("ecapa_bs1") / "out"
    args = ["-q", "apply", str(ROOT / "recipes" / "ecapa.yaml"), "-o", str(out), "--batch", "1"]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def aasist_weights(shared) -> Path:
    return shared / "models" / "aasist" / "AASIST-L.pth"


# The AASIST-L sizes the session's apply emits. Each size costs its passes and a parity run of
# that many rows (~0.35 s a row); 8 and 32 take the code paths of 4, 16 and 64 (every row distinct,
# rows repeated, the largest: 12 GB), so they are left out: ~50 s of fixture and tests.
AASIST_BATCHES = (1, 4, 16, 64)


@pytest.fixture(scope="session")
def aasist_emitted(tmp_path_factory, aasist_weights) -> Path:
    """`graphkit apply recipes/aasist.yaml --weights AASIST-L.pth --batch 1,4,16,64` once per
    test session."""
    pytest.importorskip("torch")
    from graphkit.cli import main

    out = tmp_path_factory.mktemp("aasist") / "out"
    args = [
        "-q",
        "apply",
        str(ROOT / "recipes" / "aasist.yaml"),
        "-o",
        str(out),
        "--weights",
        str(aasist_weights),
        "--batch",
        ",".join(map(str, AASIST_BATCHES)),
        # the emulated fp16 run of every size would add ~50 s (bs64 alone ~30 s) to a suite at its
        # 10-minute budget; it is tested on ECAPA's fixture, the tiny recipes and AASIST bs1
        "--no-emulate",
    ]
    assert main(args) == 0
    return out


def staging_leftovers(out: Path) -> list[str]:
    """Hidden siblings a run left beside output folder ``out``: staging or a moved-aside
    result (the lock file stays by design)."""
    if not out.parent.is_dir():
        return []
    return sorted(
        p.name
        for p in out.parent.iterdir()
        if p.name.startswith(f".{out.name}.graphkit-") and not p.name.endswith("-lock")
    )
