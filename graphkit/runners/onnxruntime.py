"""onnxruntime runner: an ONNX model (path, bytes or ModelProto) on CPU, or CUDA/TensorRT on request."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx

from graphkit._util import first_line
from graphkit.errors import ModelError, RunnerError, RunnerUnavailable
from graphkit.ir.ort import CPU, run_interruptible, session
from graphkit.ir.proto import input_dims
from graphkit.ir.weights import external_locations
from graphkit.runners.base import Runner

log = logging.getLogger("graphkit")

# "auto" and "cuda" take these, in this order, where the installed onnxruntime has them; CPU
# comes last so that nodes a GPU provider cannot take still run.
CUDA = "CUDAExecutionProvider"
_ACCELERATED = ("TensorrtExecutionProvider", CUDA)


def choose_providers(providers: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """Providers for a session: ``"cpu"``, ``"auto"`` (GPU ones where available, else CPU),
    ``"cuda"`` (as auto, but CUDA or a :class:`RunnerUnavailable`) or an explicit list."""
    if isinstance(providers, str):
        if providers == "cpu":
            return [CPU]
        if providers == "cuda" and CUDA not in available:  # never CPU under a GPU runner's name
            import onnxruntime as ort

            raise RunnerUnavailable(
                f"onnxruntime {ort.__version__} here has no {CUDA} (its providers: {', '.join(available)}); "
                "install onnxruntime-gpu in place of onnxruntime, with the CUDA and cuDNN it needs"
            )
        if providers in ("auto", "cuda"):
            return [p for p in _ACCELERATED if p in available] + [CPU]
        providers = [providers]
    missing = [p for p in providers if p not in available]
    if missing:
        raise RunnerUnavailable(
            f"onnxruntime here has no {', '.join(missing)} (it has {', '.join(available)}); "
            "install onnxruntime-gpu for CUDA/TensorRT, or use providers='auto' or 'cpu'"
        )
    return list(providers)


def _check_fallback(
    asked: str | Sequence[str], chosen: Sequence[str], got: Sequence[str], where: str
) -> None:
    """onnxruntime falls back to CPU, with a warning, where a provider it lists cannot start (a
    missing CUDA or cuDNN library): a RunnerUnavailable where that provider was required
    (``"cuda"``: CUDA; an explicit list: each), a warning for ``"auto"``."""
    lost = [p for p in chosen if p != CPU and p not in got]
    required = [] if asked == "auto" else [CUDA] if asked == "cuda" else lost
    if any(p in required for p in lost):
        raise RunnerUnavailable(
            f"{where}: onnxruntime could not start {', '.join(lost)} and fell back to {', '.join(got)}; "
            "check that the CUDA and cuDNN libraries onnxruntime-gpu needs are installed and found"
        )
    if lost:
        log.warning(
            "%s: onnxruntime could not start %s; running on %s", where, ", ".join(lost), ", ".join(got)
        )


def static_batch(model: onnx.ModelProto) -> int | None:
    """Dim 0 of the first graph input when it is a fixed number, else None (any batch)."""
    first = next(iter(input_dims(model).values()), [])
    return first[0] if first and isinstance(first[0], int) and first[0] > 0 else None


def _read_model_file(path: Path) -> bytes:
    """The bytes of a model file; a folder, a missing, empty or unreadable file is a ModelError."""
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not an ONNX model file")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    if not data:
        raise ModelError(f"{path}: the model file is empty")
    return data


class OnnxruntimeRunner(Runner):
    """Run an ONNX model with onnxruntime.

    ``model``: a path, serialised bytes or a ModelProto. ``providers``: ``"cpu"`` (default),
    ``"auto"`` (TensorRT and CUDA execution providers where ``onnxruntime.get_available_providers()``
    lists them, then CPU), ``"cuda"`` (the same, but without CUDA a :class:`RunnerUnavailable`,
    never a CPU run) or an explicit list; a session that could not start a provider it required
    (onnxruntime falls back to CPU with a warning) is a RunnerUnavailable too. ``threads``:
    intra-op threads (None: onnxruntime's default). ``batch`` is the model's static input batch,
    or None when the batch is symbolic.
    """

    kind: ClassVar[str] = "onnxruntime"

    def __init__(
        self,
        model: str | Path | bytes | onnx.ModelProto,
        *,
        providers: str | Sequence[str] = "cpu",
        threads: int | None = None,
        output_names: Sequence[str] | None = None,
        label: str | None = None,
    ) -> None:
        import onnxruntime as ort

        where = "onnxruntime"  # what messages call the model: its path where it has one
        if isinstance(model, (str, Path)):
            path = Path(model)
            data, where = _read_model_file(path), str(path)
            default_label = path.stem
        elif isinstance(model, onnx.ModelProto):
            data = model.SerializeToString()
            default_label = "onnxruntime"
        else:
            data = bytes(model)
            default_label = "onnxruntime"
        try:
            proto = onnx.load_from_string(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            why = f"{type(exc).__name__}: {first_line(exc)}"
            raise ModelError(f"{where}: not a readable ONNX model, or a truncated one ({why})") from None
        if not proto.graph.node and not proto.graph.output:  # bytes that happen to parse
            raise ModelError(f"{where}: not an ONNX model (no graph found)")
        self.batch = static_batch(proto)
        chosen = choose_providers(providers, ort.get_available_providers())
        if threads is not None and threads < 1:
            raise RunnerError(f"onnxruntime: threads must be >= 1, got {threads}")
        # a model that keeps its weights beside it (apply's weights/) is opened from its file,
        # so that onnxruntime finds them relative to its folder
        source = Path(model) if isinstance(model, (str, Path)) and external_locations(proto) else data
        try:
            self._session = session(source, threads=threads, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise RunnerError(f"onnxruntime cannot load {where}: {first_line(exc)}") from None
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())
        _check_fallback(providers, chosen, self.providers, where)
        if providers in ("auto", "cuda"):
            log.info("onnxruntime providers: %s", ", ".join(self.providers))
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        names = [o.name for o in self._session.get_outputs()]
        if output_names is not None:
            unknown = [n for n in output_names if n not in names]
            if unknown:
                raise RunnerError(
                    f"onnxruntime: the model has no output {', '.join(map(repr, unknown))} "
                    f"(its outputs: {', '.join(names)})"
                )
            names = list(output_names)
        self.output_names = tuple(names)
        self.label = label or default_label

    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        feed = {n: np.ascontiguousarray(feeds[n]) for n in self.input_names}
        try:
            values = run_interruptible(self._session, list(self.output_names), feed)  # Ctrl-C stops it
        except Exception as exc:
            raise RunnerError(f"{self.label} [{key}]: onnxruntime failed: {first_line(exc)}") from None
        return dict(zip(self.output_names, values))

    def _release(self) -> None:
        self._session = None
