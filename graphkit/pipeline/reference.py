"""Reference outputs of the unmodified model, and the seeded rows parity feeds it.

:class:`Reference` runs the unmodified model once on a fixed list of feeds; ``measure`` runs a
candidate on the same feeds and judges every output with :func:`graphkit.numerics.check`.
:class:`Feeds` builds the parity feeds of a recipe: seeded rows and the recipe's real samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit.data.samples import load_samples
from graphkit.errors import ModelError, ParityError
from graphkit.ir.ort import Feed, OrtFailure, run_model
from graphkit.numerics import Check, check, failure_message, first_failure, worse
from graphkit.recipe import InputSpec, ParitySpec, Recipe

DISTINCT_ROWS = 8  # per-batch checks draw their rows from at least this many distinct rows


class Reference:
    """Reference outputs of the unmodified model on a fixed list of feeds."""

    def __init__(
        self, model: onnx.ModelProto, feeds: Sequence[Feed], outputs: Sequence[str], spec: ParitySpec
    ) -> None:
        self.feeds = list(feeds)
        self.outputs = list(outputs)
        self.spec = spec
        try:
            self.values = run_model(model, self.feeds, self.outputs)
        except OrtFailure as exc:
            raise ModelError(f"onnxruntime cannot run the unmodified model: {exc}") from None
        for k, result in enumerate(self.values):
            for name, value in result.items():
                if not np.all(np.isfinite(value)):
                    raise ParityError(
                        f"the unmodified model gives non-finite values on output '{name}' for "
                        f"parity feed {k}: set inputs.*.range or give real samples"
                    )

    def rebase(self, values: list[Feed], feeds: Sequence[Feed] | None = None) -> Reference:
        """A reference with other values (after an approximate pass) and optionally other
        feeds (a subset of rows whose values are known)."""
        other = object.__new__(Reference)
        other.feeds = list(self.feeds if feeds is None else feeds)
        other.outputs, other.spec, other.values = self.outputs, self.spec, values
        return other

    def measure(self, model: onnx.ModelProto | bytes, *, where: str, extra_abs: float = 0.0) -> Measurement:
        """Run ``model`` on the feeds and judge every output against the recipe's tolerance
        (widened by ``extra_abs``): the worst check per output over the feeds, the candidate's
        outputs, and the failure message (naming ``where``) of the first output that breaks it.
        Raises OrtFailure where onnxruntime cannot run the model."""
        if len(self.feeds) != len(self.values):
            raise ValueError("a reference needs one set of values per feed")
        got = run_model(model, self.feeds, self.outputs)
        worst: dict[str, Check] = {}
        for k, (ref, cand) in enumerate(zip(self.values, got)):
            for name in self.outputs:
                try:
                    c = check(ref[name], cand[name], self.spec.tolerance_for(name), extra_abs=extra_abs)
                except ValueError as exc:
                    raise ParityError(f"output '{name}' (feed {k}): {exc}") from None
                if name not in worst or worse(c, worst[name]):
                    worst[name] = c
        found = first_failure(worst)
        failure = None
        if found is not None:
            name, c = found
            failure = failure_message(where, name, c, self.spec.tolerance_for(name), extra_abs)
        return Measurement(worst, got, failure)


@dataclass(frozen=True)
class Measurement:
    """A candidate model judged against a :class:`Reference`."""

    checks: dict[str, Check]  # per output, the worst over the feeds
    outputs: list[Feed]  # the candidate's raw outputs, one mapping per feed
    failure: str | None  # the message for the first output that breaks its tolerance

    def figures(self) -> dict[str, dict[str, object]]:
        """For manifest.json: each output's figures and minimum passing tolerance."""
        return {name: c.as_dict() for name, c in self.checks.items()}


def seeded_rows(inputs: Sequence[InputSpec], rows: int, seed: int) -> Feed:
    """``rows`` seeded random rows per input (uniform in ``range`` or standard normal)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in inputs:
        shape = spec.concrete(rows)
        if spec.range is not None:
            lo, hi = spec.range
            if spec.dtype.startswith("float"):
                arr = rng.uniform(lo, hi, size=shape)
            else:
                arr = rng.integers(int(lo), int(hi), size=shape, endpoint=False)
        else:
            arr = rng.standard_normal(size=shape)
        feed[spec.name] = arr.astype(spec.dtype)
    return feed


def concat_rows(feeds: Sequence[Feed], inputs: Sequence[InputSpec]) -> Feed:
    return {s.name: np.concatenate([f[s.name] for f in feeds], axis=s.batch_axis or 0) for s in inputs}


class Feeds:
    """Seeded and real parity inputs, and the reference outputs for every check.

    Stage 1 checks two feeds: ``parity.batch`` seeded rows, and the real samples. The
    per-batch check of size N feeds N rows drawn in turn from ``distinct`` rows — the real
    samples first, then seeded rows, at least :data:`DISTINCT_ROWS` of them — so a model that
    mixes rows of a batch is caught, and the reference of every row is computed once, in one
    run of the unmodified model (rows of an inference-mode model are independent).
    """

    def __init__(self, recipe: Recipe, model: onnx.ModelProto, outputs: Sequence[str]) -> None:
        spec = recipe.parity
        self.inputs = recipe.inputs
        seeded = seeded_rows(self.inputs, spec.batch, spec.seed)
        real = _real_rows(recipe)
        self.stage1_feeds = [seeded] + ([real] if real is not None else [])
        have = sum(_rows(f, self.inputs) for f in self.stage1_feeds)
        extra = seeded_rows(self.inputs, max(0, DISTINCT_ROWS - have), spec.seed + 1)
        feeds = [*self.stage1_feeds] + ([extra] if _rows(extra, self.inputs) else [])
        self.reference = Reference(model, feeds, outputs, spec)
        order = [1, 0, 2] if real is not None else [0, 1]  # real rows first
        order = [i for i in order if i < len(feeds)]
        self.distinct = concat_rows([feeds[i] for i in order], self.inputs)
        self.distinct_values = {
            name: np.concatenate([self.reference.values[i][name] for i in order]) for name in outputs
        }
        self.n_distinct = _rows(self.distinct, self.inputs)

    def stage1(self) -> Reference:
        n = len(self.stage1_feeds)
        return self.reference.rebase(self.reference.values[:n], self.stage1_feeds)

    def for_batch(self, batch: int) -> Reference:
        rows = np.arange(batch) % self.n_distinct
        feed = {i.name: np.take(self.distinct[i.name], rows, axis=i.batch_axis or 0) for i in self.inputs}
        values = {k: v[rows] for k, v in self.distinct_values.items()}
        return self.reference.rebase([values], [feed])


def _real_rows(recipe: Recipe) -> Feed | None:
    """The recipe's real samples as one feed (inputs without samples get seeded rows)."""
    per_input: dict[str, np.ndarray] = {}
    for spec in recipe.parity.samples:
        inp = next(i for i in recipe.inputs if i.name == spec.input)
        rows = load_samples(spec, inp)
        if rows is None:
            continue
        prev = per_input.get(inp.name)
        per_input[inp.name] = rows if prev is None else np.concatenate([prev, rows])
    if not per_input:
        return None
    n = min(len(r) for r in per_input.values())
    filler = seeded_rows(recipe.inputs, n, recipe.parity.seed + 2)
    feed = {}
    for inp in recipe.inputs:
        rows = per_input.get(inp.name)
        feed[inp.name] = filler[inp.name] if rows is None else np.moveaxis(rows[:n], 0, inp.batch_axis or 0)
    return feed


def _rows(feed: Feed, inputs: Sequence[InputSpec]) -> int:
    first = inputs[0]
    return feed[first.name].shape[first.batch_axis or 0]
