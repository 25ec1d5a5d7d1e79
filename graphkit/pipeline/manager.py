"""The pass manager: runs a list of pass steps and calls instruments around each.

The manager itself only imports the model into a gs.Graph (with inferred shapes), runs the pass,
removes dead nodes, re-sorts and exports. Everything else — timing, the op-count delta, the
ONNX checker, parity against onnxruntime, dumps, progress — is an
:class:`~graphkit.pipeline.instruments.Instrument` with ``before_pass``/``after_pass`` hooks,
kept out of the manager's own code (TVM's instrument model). Instruments run in list order, so
put :class:`~graphkit.pipeline.instruments.Timing` first to time only the pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from graphkit.errors import GraphkitError, PassError
from graphkit.ir.graph import export_model, import_graph
from graphkit.passes._infra import PassRegistry, PassSpec, Sites
from graphkit.pipeline.events import PassEvent, PassRecord
from graphkit.pipeline.instruments import Instrument
from graphkit.recipe import BATCH_PASS, PassStep

log = logging.getLogger("graphkit")


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
