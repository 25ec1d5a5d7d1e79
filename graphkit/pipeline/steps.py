"""A recipe's passes as one value: the stages they run in, how to run them, and localisation.

Emitted models are static, so a pipeline has two stages: the passes before ``set_batch_size``
run ``once``, on the batch-polymorphic graph; the passes from ``set_batch_size`` on run
``per_batch``, once for every batch size (a pipeline without ``set_batch_size`` gets it
implicitly at the end). ``graphkit apply``, ``graphkit bisect`` and the node sweep all run
passes through :meth:`Pipeline.run` and localise a failure with :meth:`Pipeline.localise`.

The batch reaches ``set_batch_size`` as a per-step parameter override: the pass manager knows
nothing of batches beyond recording them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import onnx

from graphkit.pipeline.events import PassRecord
from graphkit.pipeline.instruments import Instrument
from graphkit.pipeline.manager import PassManager
from graphkit.recipe import BATCH_PASS, PassStep, Recipe

Stage = Literal["once", "per_batch", "all"]


@dataclass(frozen=True)
class Pipeline:
    once: tuple[PassStep, ...]
    per_batch: tuple[PassStep, ...]
    axes: Mapping[str, int] | None = None  # set_batch_size's batch axis per input (final names)

    @classmethod
    def from_steps(cls, steps: Sequence[PassStep], *, where: str, batched: bool = True) -> Pipeline:
        """Split ``steps`` at ``set_batch_size``. ``batched=False`` (a model without a batch
        dim) drops ``set_batch_size`` and runs everything once; otherwise a pipeline without
        it gets it implicitly at the end (``where`` names that implicit step)."""
        steps = tuple(steps)
        names = [s.name for s in steps]
        if not batched:
            return cls(tuple(s for s in steps if s.name != BATCH_PASS), ())
        if BATCH_PASS not in names:  # emitted models are static: fix the batch last
            return cls(steps, (PassStep(BATCH_PASS, {}, f"{where} (implicit {BATCH_PASS})"),))
        i = names.index(BATCH_PASS)
        return cls(steps[:i], steps[i:])

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Pipeline:
        """The recipe's steps; ``set_batch_size`` sets each input's batch axis (where its
        shape has the symbol), under the name it has after ``rename_io``."""
        renames, _, bound = recipe.io_names()
        axes = {
            renames.get(i.name, i.name): i.batch_axis
            for i in recipe.inputs
            if i.batch_axis is not None and i.name not in bound
        }
        plain = cls.from_steps(recipe.passes, where=f"{recipe.path}: passes")
        return cls(plain.once, plain.per_batch, axes)

    @property
    def steps(self) -> tuple[PassStep, ...]:
        return (*self.once, *self.per_batch)

    def stage(self, stage: Stage) -> tuple[PassStep, ...]:
        return {"once": self.once, "per_batch": self.per_batch, "all": self.steps}[stage]

    def run(
        self,
        manager: PassManager,
        model: onnx.ModelProto,
        *,
        stage: Stage = "all",
        batch: int | None = None,
        extra: Sequence[Instrument] = (),
    ) -> tuple[onnx.ModelProto, list[PassRecord]]:
        """Run one stage's steps (``all``: every step, in one manager run, at ``batch``) and
        return the model and each pass's record. ``set_batch_size`` runs at ``batch``, which a
        stage holding it needs."""
        steps = self.stage(stage)
        overrides = {}
        for i, step in enumerate(steps):
            if step.name == BATCH_PASS:
                if batch is None:
                    raise ValueError(f"{step.where}: {BATCH_PASS} needs a batch size")
                overrides[i] = {"batch": batch} | ({"axes": dict(self.axes)} if self.axes is not None else {})
        return manager.run(model, steps, batch=batch, overrides=overrides, extra=extra)

    def localise(
        self,
        manager: PassManager,
        model: onnx.ModelProto,
        *,
        check: Instrument,
        stage: Stage = "per_batch",
        batch: int | None = None,
    ) -> tuple[onnx.ModelProto, list[PassRecord]]:
        """Re-run ``stage`` with ``check`` after every pass, so that a breach the stage's final
        model showed is raised by ``check`` naming the pass that caused it (its error carries
        the pass, the recipe step and the batch). Where no single pass breaches (a per-pass
        allowance such as ``fp_reorder``, or an approximate pass the check accepts), returns
        the run's model and records."""
        return self.run(manager, model, stage=stage, batch=batch, extra=[check])
