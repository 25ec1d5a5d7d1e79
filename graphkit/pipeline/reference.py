"""Reference outputs of the unmodified model, and the seeded rows parity feeds it.

:class:`Reference` runs the unmodified model once on a fixed list of feeds; ``measure`` runs a
candidate on the same feeds and judges every output with :func:`graphkit.numerics.check`
(under the names the candidate gives them after ``rename_io``; inputs it no longer has, bound
by ``bind_inputs``, are not fed). :class:`Feeds` builds the parity feeds of a recipe: seeded
rows, fixed values, state warmed up by the model itself, and the recipe's real samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from graphkit._progress import Stopwatch
from graphkit.data.samples import load_samples
from graphkit.errors import DataError, ModelError, ParityError
from graphkit.ir.arrays import load_npy
from graphkit.ir.memory import check_fits, run_bytes
from graphkit.ir.ort import Feed, OrtFailure, run_model
from graphkit.numerics import Check, check, failure_message, first_failure, worse
from graphkit.recipe import InputSpec, ParitySpec, Recipe

log = logging.getLogger("graphkit")
DISTINCT_ROWS = 8  # per-batch checks draw their rows from at least this many distinct rows
WARMUP = 3  # runs of the model that bring a state input from zero to a realistic value


class Reference:
    """Reference outputs of the unmodified model on a fixed list of feeds."""

    def __init__(
        self,
        model: onnx.ModelProto,
        feeds: Sequence[Feed],
        outputs: Sequence[str],
        spec: ParitySpec,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.feeds = list(feeds)
        self.outputs = list(outputs)
        self.spec = spec
        self.names = dict(names or {})  # reference name -> the candidate's (rename_io)
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
        other.outputs, other.spec, other.values, other.names = self.outputs, self.spec, values, self.names
        return other

    def measure(self, model: onnx.ModelProto | bytes, *, where: str, extra_abs: float = 0.0) -> Measurement:
        """Run ``model`` on the feeds and judge every output against the recipe's tolerance
        (widened by ``extra_abs``): the worst check per output over the feeds, the candidate's
        outputs, and the failure message (naming ``where``) of the first output that breaks it.
        Raises OrtFailure where onnxruntime cannot run the model."""
        if len(self.feeds) != len(self.values):
            raise ValueError("a reference needs one set of values per feed")
        got = run_model(model, self.feeds, self.outputs, names=self.names)
        worst: dict[str, Check] = {}
        for k, (ref, cand) in enumerate(zip(self.values, got)):
            for name in self.outputs:
                r, g = _same_rank(ref[name], cand[name])
                try:
                    c = check(r, g, self.spec.tolerance_for(name), extra_abs=extra_abs)
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


def _same_rank(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An output whose rank follows the batch (a Squeeze of a size-1 batch gives shape ()) is
    compared by value when only unit dims differ: the reference of a sliced row keeps them."""
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape and ref.size == got.size and np.squeeze(ref).shape == np.squeeze(got).shape:
        return np.squeeze(ref), np.squeeze(got)
    return ref, got


def seeded_rows(inputs: Sequence[InputSpec], rows: int, seed: int, *, offset: int = 0) -> Feed:
    """``rows`` rows per input: the input's fixed ``value``, its ``npy`` rows (taken in turn
    from row ``offset``),
    zeros for a ``feedback`` state (see :meth:`Feeds.warm`), else seeded random values (uniform
    in ``range`` or standard normal). An input without a batch dim has its one shape."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in inputs:
        shape = spec.concrete(rows)
        if spec.value is not None:
            arr = np.full(shape, spec.value)
        elif spec.npy is not None:
            arr = _npy_rows(spec, rows, offset)
        elif spec.feedback is not None:
            arr = np.zeros(shape)
        elif spec.range is not None:
            lo, hi = spec.range
            if spec.dtype.startswith("float"):
                arr = rng.uniform(lo, hi, size=shape)
            else:
                arr = rng.integers(int(lo), int(hi), size=shape, endpoint=False)
        else:
            arr = rng.standard_normal(size=shape)
        feed[spec.name] = arr.astype(spec.dtype)
    return feed


def _npy_rows(spec: InputSpec, rows: int, offset: int = 0) -> np.ndarray:
    assert spec.npy is not None
    arr = load_npy(spec.npy, f"array for input '{spec.name}'")  # a .npz under the name: said so
    axis = spec.batch_axis
    want = spec.concrete(rows)
    if axis is None:
        if arr.shape != want:
            raise DataError(f"{spec.npy}: shaped {arr.shape}, input '{spec.name}' is {want}")
        return arr
    row_shape = want[:axis] + want[axis + 1 :]
    got_rows = arr.shape[:axis] + arr.shape[axis + 1 :] if arr.ndim == len(want) else None
    if got_rows != row_shape or arr.shape[axis] < 1:
        raise DataError(
            f"{spec.npy}: shaped {arr.shape}; input '{spec.name}' needs rows {row_shape} along axis {axis}"
        )
    return np.take(arr, (offset + np.arange(rows)) % arr.shape[axis], axis=axis)


def concat_rows(feeds: Sequence[Feed], inputs: Sequence[InputSpec]) -> Feed:
    """The feeds' rows, one after another, for the inputs with a batch dim; an input without
    one keeps the first feed's value."""
    return {
        s.name: feeds[0][s.name]
        if s.batch_axis is None
        else np.concatenate([f[s.name] for f in feeds], axis=s.batch_axis)
        for s in inputs
    }


class Feeds:
    """Seeded and real parity inputs, and the reference outputs for every check.

    Stage 1 checks two feeds: ``parity.batch`` seeded rows, and the real samples. The per-batch
    check of size N feeds N rows drawn in turn from ``distinct`` rows (the real samples first,
    then seeded rows, at least :data:`DISTINCT_ROWS` of them), so a model that mixes the rows
    of a batch is caught. Where every input and output has a batch dim (``row_mode``), the
    reference of every row is computed once, in one run of the unmodified model, and sliced.
    Otherwise — a state or scalar input without a batch dim, an output that is not per row (a
    mean over the batch), a model that runs at batch 1 only — rows are never mixed between
    runs: the reference of each batch is computed on exactly the feed the candidate gets.
    A ``feedback`` state input is warmed up: zero, then the model's own state output, fed back
    :data:`WARMUP` times on the same feed.

    Every check is sized first (:mod:`graphkit.ir.memory`): one that would not fit in memory is
    refused before it runs (AASIST-L needs 12 GB at batch 64: one onnxruntime run of the model,
    ~190 MB a row; the reference outputs kept are kilobytes). A per-batch check must feed the
    static model all its rows, so it cannot be made smaller, only refused.
    """

    def __init__(self, recipe: Recipe, model: onnx.ModelProto, outputs: Sequence[str]) -> None:
        spec = recipe.parity
        samples = " and the recipe's samples" if spec.samples else ""
        log.info("parity reference: the unmodified model on %d seeded rows%s ...", spec.batch, samples)
        watch = Stopwatch()
        self.inputs = recipe.inputs
        self.model, self.outputs, self.spec = model, list(outputs), spec
        renames_in, renames_out, _ = recipe.io_names()
        self.names = {**renames_in, **renames_out}
        self._check_feedback()
        self.batch_axes = {i.name: i.batch_axis for i in self.inputs}
        self._sized: set[int] = set()
        self.check_memory([spec.batch], what=f"the parity check of parity.batch {spec.batch}")
        seeded = self.warm(seeded_rows(self.inputs, spec.batch, spec.seed))
        real = _real_rows(recipe)
        self.stage1_feeds = [seeded] + ([self.warm(real)] if real is not None else [])
        self.axes = output_axes(recipe, model, self.outputs)
        self.row_mode = all(i.batch_axis is not None for i in self.inputs) and all(
            self.axes.get(o) is not None for o in self.outputs
        )
        have = sum(_rows(f, self.inputs) for f in self.stage1_feeds)
        extra = seeded_rows(self.inputs, max(0, DISTINCT_ROWS - have), spec.seed + 1, offset=have)
        if self.row_mode and _rows(extra, self.inputs):  # direct mode warms each batch's own feed
            extra = self.warm(extra)
        feeds = [*self.stage1_feeds] + ([extra] if _rows(extra, self.inputs) else [])
        order = [1, 0, 2] if real is not None else [0, 1]  # real rows first
        order = [i for i in order if i < len(feeds)]
        self.distinct = concat_rows([feeds[i] for i in order], self.inputs)
        self.n_distinct = _rows(self.distinct, self.inputs)
        if self.row_mode:
            self.reference = Reference(model, feeds, self.outputs, spec, self.names)
            self.distinct_values = {
                name: np.concatenate([self.reference.values[i][name] for i in order], axis=self.axes[name])
                for name in self.outputs
            }
        else:
            self.reference = Reference(model, self.stage1_feeds, self.outputs, spec, self.names)
        rows = sum(_rows(f, self.inputs) for f in self.reference.feeds)
        log.info("parity reference ready in %s (%d rows)", watch, rows)

    def _check_feedback(self) -> None:
        names = [o.name for o in self.model.graph.output]
        for i in self.inputs:
            if i.feedback is not None and i.feedback not in names:
                raise ModelError(
                    f"inputs.{i.name}.feedback: the model has no output '{i.feedback}' (its outputs: "
                    f"{', '.join(names)})"
                )

    def check_memory(self, batch_sizes: Sequence[int], *, what: str = "") -> None:
        """Refuse (MemoryLimitError) a batch size whose check would not fit in memory: one run
        of the model at that batch, which the candidate and (outside row mode) the reference
        each take in turn. Call it with every batch size before the work starts."""
        for b in batch_sizes:
            if b in self._sized:
                continue
            check_fits(
                run_bytes(self.model, b, self.batch_axes),
                what or f"the parity check at batch {b}",
                "leave that batch size out (--batch, or batch_sizes in the recipe), or skip the "
                "check with --no-parity (the model is then not checked at that size)",
            )
            self._sized.add(b)

    def warm(self, feed: Feed) -> Feed:
        """The feed with every ``feedback`` state replaced by the model's own state after
        :data:`WARMUP` runs from zero on the feed's other inputs."""
        states = {i.name: i.feedback for i in self.inputs if i.feedback is not None}
        if not states:
            return feed
        feed = dict(feed) | {name: np.zeros_like(feed[name]) for name in states}
        for _ in range(WARMUP):
            try:
                (out,) = run_model(self.model, [feed], list(set(states.values())))
            except OrtFailure as exc:
                raise ModelError(
                    f"onnxruntime cannot run the unmodified model to warm up its state: {exc}"
                ) from None
            for name, output in states.items():
                if out[output].shape != feed[name].shape:
                    raise ModelError(
                        f"inputs.{name}.feedback: output '{output}' is shaped {out[output].shape}, "
                        f"the input {feed[name].shape}"
                    )
                feed[name] = out[output].astype(feed[name].dtype)
        return feed

    def stage1(self) -> Reference:
        n = len(self.stage1_feeds)
        return self.reference.rebase(self.reference.values[:n], self.stage1_feeds)

    def for_batch(self, batch: int) -> Reference:
        self.check_memory([batch])
        rows = np.arange(batch) % self.n_distinct
        feed = {
            i.name: self.distinct[i.name]
            if i.batch_axis is None
            else np.take(self.distinct[i.name], rows, axis=i.batch_axis)
            for i in self.inputs
        }
        if self.row_mode:
            values = {k: np.take(v, rows, axis=self.axes[k]) for k, v in self.distinct_values.items()}
            return self.reference.rebase([values], [feed])
        return Reference(self.model, [self.warm(feed)], self.outputs, self.spec, self.names)


def output_axes(recipe: Recipe, model: onnx.ModelProto, outputs: Sequence[str]) -> dict[str, int | None]:
    """Each output's batch axis: declared in the recipe, else found by running the unmodified
    model at batch 1 and 2 (seeded rows): the one axis whose size is the batch in both. None:
    the output has no batch dim, its rank follows the batch, or the model runs at one size."""
    axes = {o: recipe.output_axes[o] for o in outputs if o in recipe.output_axes}
    todo = [o for o in outputs if o not in axes]
    if not todo:
        return axes
    if not all(i.batch_axis is not None for i in recipe.inputs):
        return axes | dict.fromkeys(todo)
    try:
        shapes = [
            run_model(model, [seeded_rows(recipe.inputs, b, recipe.parity.seed)], todo)[0] for b in (1, 2)
        ]
    except OrtFailure:  # e.g. a state fixed at batch 1: no row-wise reference
        return axes | dict.fromkeys(todo)
    for o in todo:
        one, two = np.shape(shapes[0][o]), np.shape(shapes[1][o])
        found = [k for k in range(len(two)) if len(one) == len(two) and one[k] == 1 and two[k] == 2]
        same = len(one) == len(two) and all(one[k] == two[k] for k in range(len(two)) if k not in found)
        axes[o] = found[0] if len(found) == 1 and same else None
    return axes


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
    batched = [i for i in inputs if i.batch_axis is not None]
    if not batched:
        return 1
    first = batched[0]
    return feed[first.name].shape[first.batch_axis]
