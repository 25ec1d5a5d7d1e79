"""Instruments: hooks the pass manager calls around every pass (TVM's instrument model).

Timing, the op-count delta, the ONNX checker, expectations, dumps of intermediate models,
parity against onnxruntime and progress are instruments, kept out of the manager's own code;
so are the selections of ``graphkit bisect`` (which passes run, which sites they rewrite).

An instrument overrides any of three hooks. ``should_run(event)`` answers whether the pass runs
at all (the manager skips it, unrecorded, when any instrument says no); ``before_pass(event)``
runs before it (and may set ``event.sites``); ``after_pass(event)`` after it, with
``event.after`` set. Instruments run in list order, so put :class:`Timing` first to time only
the pass. An instrument keeps its own state; the record holds only what it reports.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from graphkit._progress import Heartbeat
from graphkit._util import first_line
from graphkit.errors import InvalidRewrite, ParityError
from graphkit.ir.ort import OrtFailure
from graphkit.ir.proto import check_structure, op_histogram
from graphkit.passes._infra import Contract, Sites
from graphkit.pipeline.events import PassEvent
from graphkit.pipeline.expect import check_sites, near_miss_text
from graphkit.pipeline.reference import Reference

log = logging.getLogger("graphkit")


class Instrument:
    def should_run(self, event: PassEvent) -> bool:
        """Whether the pass of ``event`` runs (default: yes)."""
        return True

    def before_pass(self, event: PassEvent) -> None:  # noqa: B027 - optional hook
        pass

    def after_pass(self, event: PassEvent) -> None:  # noqa: B027 - optional hook
        pass


class Timing(Instrument):
    """The pass's wall time, into ``record.seconds``."""

    def __init__(self) -> None:
        self._start = 0.0

    def before_pass(self, event: PassEvent) -> None:
        self._start = time.perf_counter()

    def after_pass(self, event: PassEvent) -> None:
        event.record.seconds = time.perf_counter() - self._start


class OpCount(Instrument):
    def after_pass(self, event: PassEvent) -> None:
        assert event.after is not None
        before, after = op_histogram(event.before.graph), op_histogram(event.after.graph)
        event.record.nodes_before = sum(before.values())
        event.record.nodes_after = sum(after.values())
        delta = {op: after[op] - before[op] for op in sorted(set(before) | set(after))}
        event.record.ops_delta = {op: d for op, d in delta.items() if d}


class Checker(Instrument):
    """The ONNX checker on every pass output's structure; a failure names the pass."""

    def after_pass(self, event: PassEvent) -> None:
        assert event.after is not None
        try:
            check_structure(event.after)
        except onnx.checker.ValidationError as exc:
            raise InvalidRewrite(
                f"{event.step.where}: pass '{event.spec.name}' produced an invalid model: {first_line(exc)}",
                **event.located(),
            ) from None


class Expect(Instrument):
    """A step's ``expect`` (e.g. ``sites: ">= 4"``) must hold; a pass that rewrote nothing while
    it could say why candidates did not match gets a warning even without an expectation."""

    def after_pass(self, event: PassEvent) -> None:
        r = event.record
        if "sites" in event.step.expect:
            check_sites(
                event.step.where,
                event.spec.name,
                r.sites,
                event.step.expect,
                r.near_misses,
                r.batch,
                explains=event.spec.takes_sites,
                located=event.located(),
            )
        elif r.sites == 0 and r.near_misses:
            log.warning(
                "%s: pass '%s' rewrote nothing%s",
                event.step.where,
                event.spec.name,
                near_miss_text(r.near_misses),
            )


class Dump(Instrument):
    """Writes every intermediate model to ``directory`` (``--dump-passes``): pass ``i`` (from 1)
    of stage ``prefix`` as ``{prefix}_{i:02d}_{pass}.onnx``; :meth:`save_start` the model before
    the first pass as ``{prefix}_00_{what}.onnx``, so a listing sorts in the order they ran."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix

    def save_start(self, model: onnx.ModelProto, what: str) -> None:
        from graphkit.ir.io import save_model

        save_model(model, self.directory / f"{self.prefix}_00_{what}.onnx")

    def after_pass(self, event: PassEvent) -> None:
        from graphkit.ir.io import save_model

        assert event.after is not None
        name = f"{self.prefix}_{event.index + 1:02d}_{event.spec.name.replace(':', '.')}.onnx"
        save_model(event.after, self.directory / name)


class Parity(Instrument):
    """Compares every pass output with the reference; raises on a breach of the tolerance.

    A pass that left the model byte-identical is not re-run (its figures are the previous
    ones). ``approximate`` passes change numbers by design: a breach is logged as a warning
    (unless ``parity.strict_approximate``) and later passes are compared with that pass's
    output.
    """

    def __init__(self, reference: Reference, label: str) -> None:
        self.reference = reference
        self.label = label
        self._last: tuple[str, dict[str, Any]] | None = None  # (model digest, figures)

    def after_pass(self, event: PassEvent) -> None:
        assert event.after is not None
        data = event.after.SerializeToString()
        digest = hashlib.sha1(data).hexdigest()
        if self._last is not None and self._last[0] == digest:
            event.record.parity = self._last[1]
            return
        contract = event.spec.contract
        where = f"at pass '{event.spec.name}' ({event.step.where}{self.label})"
        try:
            measured = self.reference.measure(data, where=where, extra_abs=contract.tolerance)
        except OrtFailure as exc:
            message = f"{where}: onnxruntime cannot run the rewritten model: {exc}"
            raise ParityError(message, **event.located()) from None
        event.record.parity = measured.figures()
        self._last = (digest, event.record.parity)
        if measured.failure is None:
            return
        if contract.kind == "approximate" and not self.reference.spec.strict_approximate:
            log.warning("approximate %s", measured.failure)
            self.reference = self.reference.rebase(measured.outputs)
            return
        raise ParityError(measured.failure, **event.located())


Gate = Callable[[onnx.ModelProto, Contract], "str | None"]  # why the model is not good, or None


class Check(Instrument):
    """``gate(model, contract)`` after every pass; a reason is a ParityError naming the pass."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def after_pass(self, event: PassEvent) -> None:
        assert event.after is not None
        why = self.gate(event.after, event.spec.contract)
        if why is not None:
            raise ParityError(why, **event.located())


@dataclass(frozen=True)
class Columns:
    """Widths of the progress lines' columns, the same for a whole run so that the lines of
    every stage (``all``, ``bs1`` … ``bs128``) and pass (``replace_scatternd_with_concat``)
    line up."""

    label: int = 0
    name: int = 20
    steps: int = 1  # digits of the largest step count

    @classmethod
    def fit(cls, labels: Iterable[str], names: Iterable[str], steps: int) -> Columns:
        return cls(max(map(len, labels), default=0), max([20, *map(len, names)]), len(str(steps)))

    def label_text(self, label: str) -> str:
        """``label`` padded to the column ('' stays '': a run without labels)."""
        return label.ljust(self.label) if label else ""


class Progress(Instrument):
    """One line per pass: what it rewrote, its time and the time of the checks after it. Put it
    after the other instruments (after :class:`Parity`): the checks' time is the time from the
    end of the pass to this instrument's turn. With a ``heartbeat``, a pass and its checks that
    run longer than the heartbeat's delay get a line while they run."""

    def __init__(
        self, label: str = "", columns: Columns | None = None, *, heartbeat: Heartbeat | None = None
    ) -> None:
        self.columns = columns or Columns()
        self.label = self.columns.label_text(label.strip())
        self.heartbeat = heartbeat
        self._start = 0.0

    def _head(self, event: PassEvent) -> str:
        c = self.columns
        step = f"[{event.index + 1}/{event.total}]".ljust(2 * c.steps + 3)
        return f"{self.label} {step} {event.spec.name:<{c.name}}".lstrip()

    def before_pass(self, event: PassEvent) -> None:
        self._start = time.perf_counter()
        if self.heartbeat is not None:
            self.heartbeat.start(self._head(event).rstrip())

    def after_pass(self, event: PassEvent) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        r = event.record
        checks = max(0.0, time.perf_counter() - self._start - r.seconds)
        nodes = f"{r.nodes_before}→{r.nodes_after}"
        log.info(
            "%s  sites %-5d nodes %-11s %7.2fs  checks %6.2fs",
            self._head(event),
            r.sites,
            nodes,
            r.seconds,
            checks,
        )


class Keep(Instrument):
    """Keeps the model after every pass that runs: ``models[i]`` follows step ``indices[i]``."""

    def __init__(self) -> None:
        self.models: list[onnx.ModelProto] = []
        self.indices: list[int] = []

    def after_pass(self, event: PassEvent) -> None:
        assert event.after is not None
        self.models.append(event.after)
        self.indices.append(event.index)


class Only(Instrument):
    """Runs only the steps at ``indices`` (the others are skipped, the model passed through)."""

    def __init__(self, indices: Collection[int]) -> None:
        self.indices = frozenset(indices)

    def should_run(self, event: PassEvent) -> bool:
        return event.index in self.indices


class SelectSites(Instrument):
    """The pass at step ``index`` rewrites only the sites ``sites`` selects."""

    def __init__(self, index: int, sites: Sites) -> None:
        self.index = index
        self.sites = sites

    def before_pass(self, event: PassEvent) -> None:
        if event.index == self.index:
            event.sites = self.sites
