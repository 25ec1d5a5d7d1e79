"""The pass manager: runs a list of pass steps and calls instruments around each.

The manager itself only imports the model into a gs.Graph (with inferred shapes), runs the pass,
removes dead nodes, re-sorts and exports. Everything else — timing, the op-count delta, the
ONNX checker, parity against onnxruntime, dumps, progress — is an :class:`Instrument` with
``before_pass``/``after_pass`` hooks, kept out of the manager's own code (TVM's instrument
model). Instruments run in list order, so put :class:`Timing` first to time only the pass.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from graphkit.errors import GraphkitError, ParityError, PassError
from graphkit.expect import check_sites, near_miss_text
from graphkit.graph import check_structure, export_model, import_graph, op_histogram
from graphkit.parity import OrtFailure, Reference, first_breach, parity_message
from graphkit.recipe import BATCH_PASS, ParitySpec, PassStep
from graphkit.registry import PassRegistry, PassSpec, Sites

log = logging.getLogger("graphkit")


@dataclass
class PassRecord:
    """What one pass did; serialised into manifest.json."""

    name: str
    params: dict[str, Any]
    contract: str
    batch: int | None = None
    sites: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    ops_delta: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    parity: dict[str, dict[str, Any]] | None = None
    atc: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    near_misses: list[tuple[str, str]] = field(default_factory=list)  # (candidate, why not)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v not in (None, {}, []) or k == "sites"}


@dataclass
class PassEvent:
    """What instruments see: the step, its spec, the models around it and its record."""

    step: PassStep
    spec: PassSpec
    index: int
    total: int
    before: onnx.ModelProto
    record: PassRecord
    after: onnx.ModelProto | None = None
    previous: tuple[str, ...] = ()


class Instrument:
    def before_pass(self, event: PassEvent) -> None:  # noqa: B027 - optional hook
        pass

    def after_pass(self, event: PassEvent) -> None:  # noqa: B027 - optional hook
        pass


class Timing(Instrument):
    def before_pass(self, event: PassEvent) -> None:
        event.record.seconds = time.perf_counter()

    def after_pass(self, event: PassEvent) -> None:
        event.record.seconds = time.perf_counter() - event.record.seconds


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
            first = str(exc).strip().splitlines()[0]
            raise PassError(
                f"{event.step.where}: pass '{event.spec.name}' produced an invalid model: {first}"
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
            )
        elif r.sites == 0 and r.near_misses:
            log.warning(
                "%s: pass '%s' rewrote nothing%s",
                event.step.where,
                event.spec.name,
                near_miss_text(r.near_misses),
            )


class Dump(Instrument):
    """Writes every intermediate model to ``directory`` (``--dump-passes``)."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix

    def after_pass(self, event: PassEvent) -> None:
        from graphkit.io import save_model

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
        spec: ParitySpec = self.reference.spec
        try:
            figures, outputs = self.reference.measure(data)
        except OrtFailure as exc:
            raise ParityError(
                f"at pass '{event.spec.name}' ({event.step.where}{self.label}): "
                f"onnxruntime cannot run the rewritten model: {exc}"
            ) from None
        event.record.parity = {k: f.as_dict() for k, f in figures.items()}
        self._last = (digest, event.record.parity)
        contract = event.spec.contract
        found = first_breach(figures, spec, contract.tolerance)
        if found is None:
            return
        name, fig, tol, why = found
        where = f"at pass '{event.spec.name}' ({event.step.where}{self.label})"
        if contract.kind == "approximate" and not spec.strict_approximate:
            log.warning("approximate %s", parity_message(where, name, fig, tol, why))
            self.reference = self.reference.rebase(outputs)
            return
        raise ParityError(parity_message(where, name, fig, tol, why))


class Progress(Instrument):
    def __init__(self, label: str = "") -> None:
        self.label = label

    def after_pass(self, event: PassEvent) -> None:
        r = event.record
        log.info(
            "%s[%d/%d] %-20s sites %-4d nodes %d→%d  %.2fs",
            self.label,
            event.index + 1,
            event.total,
            event.spec.name,
            r.sites,
            r.nodes_before,
            r.nodes_after,
            r.seconds,
        )


class PassManager:
    def __init__(self, registry: PassRegistry, instruments: Sequence[Instrument] = ()) -> None:
        self.registry = registry
        self.instruments = list(instruments)

    def run(
        self,
        model: onnx.ModelProto,
        steps: Sequence[PassStep],
        *,
        batch: int | None = None,
        extra: Sequence[Instrument] = (),
        sites: Mapping[int, Sites] | None = None,
    ) -> tuple[onnx.ModelProto, list[PassRecord]]:
        """Run ``steps`` in order. ``sites`` maps a step index to the :class:`Sites` selection
        that step's pass runs under (``graphkit bisect``); the others rewrite every match."""
        instruments = [*self.instruments, *extra]
        records: list[PassRecord] = []
        done: list[str] = []
        for i, step in enumerate(steps):
            spec = self.registry.get(step.name)
            params = dict(step.params)
            if spec.name == BATCH_PASS and batch is not None:
                params["batch"] = batch
            record = PassRecord(spec.name, dict(step.params), str(spec.contract), batch)
            event = PassEvent(step, spec, i, len(steps), model, record, previous=tuple(done))
            for inst in instruments[:1]:  # timing first: it measures the pass alone
                inst.before_pass(event)
            for inst in instruments[1:]:
                inst.before_pass(event)
            model_after = self._apply(spec, step, params, model, event, (sites or {}).get(i))
            event.after = model_after
            for inst in instruments:
                inst.after_pass(event)
            records.append(record)
            done.append(spec.name)
            model = model_after
        return model, records

    @staticmethod
    def _apply(
        spec: PassSpec,
        step: PassStep,
        params: dict[str, Any],
        model: onnx.ModelProto,
        event: PassEvent,
        sites: Sites | None = None,
    ) -> onnx.ModelProto:
        graph = import_graph(model)
        batch = f", batch {event.record.batch}" if event.record.batch is not None else ""
        after = f" (after: {', '.join(event.previous)})" if event.previous else ""
        try:
            result = spec.run(graph, params, sites)
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            out = export_model(graph, like=model)
        except GraphkitError as exc:
            raise type(exc)(f"{step.where} ({spec.name}{batch}){after}: {exc}") from exc
        except Exception as exc:
            raise PassError(
                f"{step.where}: pass '{spec.name}'{batch} raised {type(exc).__name__}: {exc}{after}"
            ) from exc
        event.record.sites = result.sites
        event.record.atc = dict(result.atc)
        event.record.notes = list(result.notes)
        event.record.near_misses = list(result.near_misses)
        return out
