"""The pass manager: runs a list of pass steps and calls instruments around each.

The manager itself only imports the model into a gs.Graph (with inferred shapes), runs the pass,
removes dead nodes, re-sorts and exports. Everything else — timing, the op-count delta, the
ONNX checker, parity against onnxruntime, dumps, progress, bisect's selections — is an
:class:`~graphkit.pipeline.instruments.Instrument`, kept out of the manager's own code (TVM's
instrument model). It knows no pass by name: per-step parameter overrides (the batch size the
pipeline gives ``set_batch_size``) come from the caller.

An error raised while a pass runs is re-raised with where it happened in its message and as
fields (``pass_name``, ``where``, ``recipe``, ``batch``; see :mod:`graphkit.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from graphkit.errors import GraphkitError, PassError
from graphkit.ir.graph import export_model, import_graph
from graphkit.passes._infra import PassRegistry, PassSpec
from graphkit.pipeline.events import PassEvent, PassRecord
from graphkit.pipeline.instruments import Instrument
from graphkit.recipe import PassStep


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
        overrides: Mapping[int, Mapping[str, Any]] | None = None,
        extra: Sequence[Instrument] = (),
    ) -> tuple[onnx.ModelProto, list[PassRecord]]:
        """Run ``steps`` in order; returns the model and the record of each pass that ran.

        ``overrides`` maps a step index to parameters that replace the recipe's for that run;
        ``batch`` is recorded with every pass (the per-batch stage's size)."""
        instruments = [*self.instruments, *extra]
        records: list[PassRecord] = []
        done: list[str] = []
        for i, step in enumerate(steps):
            spec = self.registry.get(step.name)
            params = {**step.params, **(overrides or {}).get(i, {})}
            record = PassRecord(spec.name, params, str(spec.contract), batch)
            event = PassEvent(step, spec, i, len(steps), model, record, previous=tuple(done))
            if not all(inst.should_run(event) for inst in instruments):
                continue
            for inst in instruments:
                inst.before_pass(event)
            event.after = self._apply(spec, params, event)
            for inst in instruments:
                inst.after_pass(event)
            records.append(record)
            done.append(spec.name)
            model = event.after
        return model, records

    @staticmethod
    def _apply(spec: PassSpec, params: dict[str, Any], event: PassEvent) -> onnx.ModelProto:
        step, model = event.step, event.before
        graph = import_graph(model)
        batch = f", batch {event.record.batch}" if event.record.batch is not None else ""
        after = f" (after: {', '.join(event.previous)})" if event.previous else ""
        try:
            result = spec.run(graph, params, event.sites)
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            out = export_model(graph, like=model)
        except GraphkitError as exc:
            raise exc.at(f"{step.where} ({spec.name}{batch}){after}: {exc}", **event.located()) from exc
        except Exception as exc:
            message = f"{step.where}: pass '{spec.name}'{batch} raised {type(exc).__name__}: {exc}{after}"
            raise PassError(message, **event.located()) from exc
        event.record.sites = result.sites
        event.record.atc = dict(result.atc)
        event.record.notes = list(result.notes)
        event.record.near_misses = list(result.near_misses)
        return out
