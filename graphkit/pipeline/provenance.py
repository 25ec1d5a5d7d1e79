"""What a report records about how it was made, so that two reports can be told apart.

Every JSON report graphkit writes (``manifest.json``, ``eval.json``, ``bench.json``,
``compare.json``, ``graphkit lint --json``) carries :func:`environment` under the key
``environment``: graphkit's version, Python's, the versions of the libraries that compute the
numbers, the host's CPU and the threads onnxruntime runs on, and when it ran. Beside it, what
the figures were computed from: the weights (:func:`weights_identity`), the data
(:func:`data_identity`), the files (:func:`file_identity`) and where inference ran
(:func:`execution_provider`).

Versions are read from the installed distributions' metadata (``importlib.metadata``), so that
recording torch's version never imports torch (seconds, and gigabytes on some hosts).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graphkit._version import __version__
from graphkit.ir.ort import CPU
from graphkit.pipeline.verify import file_sha256

# the distributions whose code computes or checks the numbers graphkit reports
PACKAGES = ("onnx", "onnxruntime", "onnxsim", "onnx_graphsurgeon", "numpy", "torch")
SEEDED = "seeded"  # the weights of a built-in model given none: seeded from the recipe's seed
# graphkit's sessions (graphkit.ir.ort.session) leave the thread count to onnxruntime, whose
# intra-op pool then has one thread per physical core
ORT_THREADS_SOURCE = "onnxruntime's default: one intra-op thread per physical core"


def environment() -> dict[str, Any]:
    """graphkit's and Python's versions, the libraries', the host and a UTC timestamp."""
    return {
        "graphkit": __version__,
        "python": platform.python_version(),
        "packages": dict(_packages()),
        "host": dict(_host()),
        "onnxruntime_threads": {"intra_op": _host()["physical_cores"], "set_by": ORT_THREADS_SOURCE},
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@functools.cache
def _packages() -> tuple[tuple[str, str | None], ...]:
    return tuple((name, _version(name)) for name in PACKAGES)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _host() -> dict[str, Any]:
    cpuinfo = _read_cpuinfo()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(cpuinfo) or platform.processor() or None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": _physical_cores(cpuinfo) or os.cpu_count(),
    }


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        return ""


def _cpu_model(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model") and value.strip():  # x86; Arm boards say "Model"
            return value.strip()
    return None


def _physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs: what onnxruntime counts; None where not listed."""
    cores, package = set(), "0"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def file_identity(path: str | Path) -> dict[str, Any]:
    """``{path, bytes, sha256}`` of a file (hashed once per process while it is unchanged)."""
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def folder_identity(folder: str | Path) -> dict[str, Any]:
    """``{path, files, bytes, digest}`` of a folder: its file count and a sha256 over the sorted
    relative names and sizes of every file below it (a renamed, added, removed or resized file
    changes it; reading every byte of a 3,000-file dataset would cost more than the eval)."""
    folder = Path(folder)
    entries = sorted(
        (p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )
    digest = hashlib.sha256("".join(f"{name}\t{size}\n" for name, size in entries).encode())
    return {
        "path": str(folder),
        "files": len(entries),
        "bytes": sum(size for _, size in entries),
        "digest": digest.hexdigest(),
    }


def data_identity(
    sources: Sequence[tuple[Path, str | None]],
    *,
    trials: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """The eval data: each dataset folder's identity (with its ``--data`` label), the trial
    list's (given, or found in the folder), and the ``--limit`` that subsampled them."""
    from graphkit.data.datasets import TRIAL_NAMES

    datasets = [{**folder_identity(path), "label": label} for path, label in sources]
    if trials is None:  # the list load_speaker_dataset finds (it refuses several)
        found = sorted({p for path, _ in sources for pat in TRIAL_NAMES for p in Path(path).glob(pat)})
        trials = found[0] if len(found) == 1 and found[0].is_file() else None
    return {
        "datasets": datasets,
        "trials": file_identity(trials) if trials is not None else None,
        "limit": limit,
    }


def weights_identity(recipe: Any, weights: Path | None = None) -> dict[str, Any] | str:
    """What the numbers' weights are: the checkpoint (``--weights``, else the recipe's), the ONNX
    source that holds them, or :data:`SEEDED` for a built-in model given none."""
    if recipe.source.onnx is not None:
        return {"kind": "onnx source", **file_identity(recipe.source.onnx)}
    chosen = weights or recipe.source.weights
    return {"kind": "checkpoint", **file_identity(chosen)} if chosen is not None else SEEDED


def model_identity(path: str | Path) -> dict[str, Any]:
    """:func:`file_identity` of an ONNX model, with ``external_data``: that of every file its
    weights are kept in (the model file alone does not say which weights it runs)."""
    import onnx

    path = Path(path)
    out = file_identity(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not readable as a model: its reader says so; the identity stays the file's
        return out
    found = [path.parent / name for name in _external_locations(model)]
    if found:
        out["external_data"] = [file_identity(f) for f in found if f.is_file()]
    return out


def _external_locations(model: Any) -> list[str]:
    """The files (relative to the model) that the main graph's weights are kept in."""
    import onnx

    tensors = [
        *model.graph.initializer,
        *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t")),
    ]
    external = [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    return sorted({e.value for t in external for e in t.external_data if e.key == "location"})


def path_identity(path: str | Path) -> dict[str, Any]:
    """:func:`folder_identity` of a folder, :func:`model_identity` of a model, else
    :func:`file_identity`."""
    path = Path(path)
    if path.is_dir():
        return folder_identity(path)
    return model_identity(path) if path.suffix.lower() == ".onnx" else file_identity(path)


def apply_record(recipe: Any, weights: Path | None, parity: bool) -> dict[str, Any]:
    """What ``manifest.json`` records of how ``graphkit apply`` ran: the environment, where the
    parity checks ran (graphkit's own onnxruntime CPU sessions; None with ``--no-parity``), the
    weights, and the parity data (seeded rows, and the recipe's real samples)."""
    return {
        "environment": environment(),
        "execution_provider": CPU if parity else None,
        "weights": weights_identity(recipe, weights),
        "data": parity_data(recipe) if parity else None,
    }


def parity_data(recipe: Any) -> dict[str, Any]:
    """The rows a parity check runs: seeded ones, and the recipe's real samples."""
    samples = [path_identity(s.audio or s.npy) for s in recipe.parity.samples]
    return {"seeded_rows": {"seed": recipe.parity.seed}, "samples": samples}


def execution_provider(runner: Any) -> str:
    """Where a runner's inference really runs: the first provider of its onnxruntime session
    (``session.get_providers()[0]``: what onnxruntime took, not what was asked for), torch's
    device, the NPU of ais_bench, or the files an NPU host wrote."""
    inner = getattr(runner, "inner", None)  # a runner under the source's names (Renamed)
    if inner is not None:
        return execution_provider(inner)
    kind = getattr(runner, "kind", "")
    if kind == "onnxruntime":
        return str(runner.providers[0])
    if kind == "torch":
        return f"torch {_torch_device(runner.module)}"
    if kind == "ais_bench":
        device = getattr(runner, "device_id", None)
        return "ais_bench NPU" + (f" (device {device})" if device is not None else "")
    if kind == "files":
        return "files: outputs an NPU host wrote"
    return kind or type(runner).__name__


def _torch_device(module: Any) -> str:
    param = next(iter(module.parameters()), None)
    return str(param.device) if param is not None else "cpu"
