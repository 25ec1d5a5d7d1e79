"""The runner interface (docs/eval-design.md) and the factory that opens a runner by kind."""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from graphkit.errors import UsageError
from graphkit.suggest import did_you_mean

# kind -> "module:class"; modules are imported on demand so that opening one backend never
# needs another's dependencies.
_RUNNERS: dict[str, str] = {
    "onnxruntime": "graphkit.runners.onnxruntime:OnnxruntimeRunner",
    "torch": "graphkit.runners.torch:TorchRunner",
    "ais_bench": "graphkit.runners.ais_bench:AisBenchRunner",
    "files": "graphkit.runners.files:FilesRunner",
}
RUNNER_KINDS: tuple[str, ...] = tuple(_RUNNERS)


class Runner(ABC):
    """One inference backend. ``infer`` runs one batch; ``key`` names it (``mel0``, ``mel1``, …)."""

    kind: ClassVar[str]
    label: str  # shown in tables, e.g. "graphkit bs4"
    batch: int | None  # the static batch the model needs, None = any
    output_names: tuple[str, ...]

    @abstractmethod
    def infer(self, feeds: Mapping[str, np.ndarray], *, key: str) -> dict[str, np.ndarray]:
        """Run one batch; returns one array per name in ``output_names``."""

    def device_times_ms(self) -> list[float] | None:
        """The backend's own per-inference timing in ms, or None where it has none."""
        return None

    def close(self) -> None:  # noqa: B027 - an optional hook: most runners hold nothing to release
        """Release the backend's resources; idempotent."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} batch={self.batch}>"


def runner_class(kind: str) -> type[Runner]:
    if kind not in _RUNNERS:
        raise UsageError(
            f"unknown runner '{kind}' (runners: {', '.join(RUNNER_KINDS)}){did_you_mean(kind, RUNNER_KINDS)}"
        )
    module_name, _, attr = _RUNNERS[kind].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def open_runner(kind: str, **options: Any) -> Runner:
    """Open a runner of ``kind`` (one of :data:`RUNNER_KINDS`) with that runner's options.

    Each runner's constructor documents its options; a misspelled option is a UsageError
    naming the runner's options, never silently ignored.
    """
    cls = runner_class(kind)
    sig = inspect.signature(cls)
    try:
        sig.bind(**options)
    except TypeError as exc:
        params = [p for p in sig.parameters if p != "self"]
        bad = [k for k in options if k not in params]
        hint = did_you_mean(bad[0], params) if bad else ""
        raise UsageError(f"runner '{kind}': {exc} (options: {', '.join(params)}){hint}") from None
    return cls(**options)
