"""The runner interface (docs/eval-design.md).

:meth:`Runner.infer` is a template method: it refuses a closed runner and a batch that lacks one
of the runner's inputs, then calls the backend's :meth:`Runner._infer`. A backend writes only
``_infer`` (and ``_release`` where it holds something to free).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import ClassVar

import numpy as np

from graphkit.errors import RunnerError


class Runner(ABC):
    """One inference backend. ``infer`` runs one batch; ``key`` names it (``mel0``, ``mel1``, …)."""

    kind: ClassVar[str]
    label: str  # shown in tables, e.g. "graphkit bs4"
    batch: int | None  # the static batch the model needs, None = any
    input_names: tuple[str, ...] = ()  # what every batch must feed; () for runners that read files
    output_names: tuple[str, ...]
    _closed: bool = False

    def infer(self, feeds: Mapping[str, np.ndarray], *, key: str) -> dict[str, np.ndarray]:
        """Run one batch; returns one array per name in ``output_names``."""
        if self._closed:
            raise RunnerError(f"{self.label}: the runner is closed")
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise RunnerError(f"{self.label} [{key}]: no feed for input {', '.join(missing)}")
        return self._infer(feeds, key)

    @abstractmethod
    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        """The backend's own part of :meth:`infer`: the feeds are complete, the runner open."""

    def device_times_ms(self) -> list[float] | None:
        """The backend's own per-inference timing in ms, or None where it has none."""
        return None

    def close(self) -> None:
        """Release the backend's resources; idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:  # noqa: B027 - an optional hook: most runners hold nothing to free
        """Free what the backend holds (called once, by :meth:`close`)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} batch={self.batch}>"


class Renamed(Runner):
    """A runner of an emitted model whose interface the recipe's passes changed, fed and read
    under the source model's names: inputs renamed by ``rename_io`` are fed under their new
    names, inputs bound by ``bind_inputs`` are not fed, outputs come back under the old names."""

    def __init__(
        self, inner: Runner, inputs: Mapping[str, str], outputs: Mapping[str, str], bound: set[str]
    ) -> None:
        self.inner, self._in, self._bound = inner, dict(inputs), set(bound)
        self._back = {new: old for old, new in outputs.items()}
        self.kind, self.label, self.batch = inner.kind, inner.label, inner.batch  # type: ignore[misc]
        back_in = {new: old for old, new in self._in.items()}
        self.input_names = tuple(back_in.get(n, n) for n in inner.input_names)
        self.output_names = tuple(self._back.get(n, n) for n in inner.output_names)

    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        given = {self._in.get(k, k): v for k, v in feeds.items() if k not in self._bound}
        return {self._back.get(k, k): v for k, v in self.inner.infer(given, key=key).items()}

    def device_times_ms(self) -> list[float] | None:
        return self.inner.device_times_ms()

    def _release(self) -> None:
        self.inner.close()
