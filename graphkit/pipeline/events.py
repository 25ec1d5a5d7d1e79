"""What the pass manager records of a pass, and what instruments see of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from graphkit.passes._infra import PassSpec, Sites
from graphkit.recipe import PassStep


@dataclass
class PassRecord:
    """What one pass did; serialised into manifest.json. ``params`` are the parameters it ran
    with: the recipe's, defaults filled in, and the pipeline's overrides (the batch)."""

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
    """What instruments see: the step, its spec, the models around it and its record.

    ``sites`` is the :class:`Sites` selection the pass runs under; an instrument's
    ``before_pass`` may set it (``graphkit bisect`` rewrites only some sites), else every match
    is rewritten.
    """

    step: PassStep
    spec: PassSpec
    index: int
    total: int
    before: onnx.ModelProto
    record: PassRecord
    after: onnx.ModelProto | None = None
    previous: tuple[str, ...] = ()
    sites: Sites | None = None

    def located(self) -> dict[str, Any]:
        """Where the event is, as the keyword fields of a GraphkitError."""
        return {
            "pass_name": self.spec.name,
            "where": self.step.where,
            "recipe": self.step.recipe,
            "batch": self.record.batch,
        }
