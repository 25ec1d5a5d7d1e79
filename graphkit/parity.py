"""Numeric parity against onnxruntime: reference outputs once, then compare candidates.

Per output the comparison reports max abs and max rel error, cosine similarity and the worst
element (index, reference and candidate value); :func:`check_figures` turns a breach of the
recipe's tolerance into a :class:`ParityError` that names the pass, the output, the worst
element and the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from graphkit.errors import ModelError, ParityError
from graphkit.recipe import InputSpec, ParitySpec, Tolerance

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class Figures:
    max_abs: float
    max_rel: float
    cosine: float
    worst_index: tuple[int, ...]
    reference: float
    candidate: float

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["worst_index"] = list(self.worst_index)
        return d


def session(model: onnx.ModelProto | bytes, *, threads: int | None = None):
    """An onnxruntime CPU session on an in-memory model (``threads``: intra- and inter-op
    threads; None: onnxruntime's default).

    onnxruntime's graph optimisations preserve ONNX semantics and make the check about 10 %
    faster on convolution-heavy models; the reference runs under the same settings.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # its optimizer's notes are not the user's business
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No arena: parity runs each session a few times on large batches, where the arena's
    # over-allocation cost memory (AASIST-L at batch 16: 3.1 GB instead of 4.1 GB) and time.
    opts.enable_cpu_mem_arena = False
    if threads is not None:
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class OrtFailure(Exception):
    """onnxruntime could not load or run a model (the message is its first line)."""


def run_model(model: onnx.ModelProto | bytes, feeds: Sequence[Feed], outputs: Sequence[str]) -> list[Feed]:
    """Run every feed through the model; returns one {output: array} per feed."""
    try:
        sess = session(model)
        results = []
        for feed in feeds:
            values = sess.run(list(outputs), feed)
            results.append(dict(zip(outputs, values)))
    except MemoryError:
        raise
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OrtFailure(text) from exc
    return results


def compare(reference: np.ndarray, candidate: np.ndarray) -> Figures:
    if reference.shape != candidate.shape:
        raise ValueError(f"shape {candidate.shape} differs from the reference {reference.shape}")
    ref = reference.astype(np.float64).ravel()
    got = candidate.astype(np.float64).ravel()
    if ref.size == 0:
        return Figures(0.0, 0.0, 1.0, (), 0.0, 0.0)
    diff = np.abs(ref - got)
    nan = np.isnan(diff)
    if nan.any():  # a NaN anywhere is the worst element
        i = int(np.argmax(nan))
        diff = np.where(nan, np.inf, diff)
    else:
        i = int(np.argmax(diff))
    rel = diff / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    denom = np.linalg.norm(ref) * np.linalg.norm(got)
    if denom == 0:
        cosine = 1.0 if np.array_equal(ref, got) else 0.0
    else:
        cosine = float(np.dot(ref, got) / denom)
    return Figures(
        max_abs=float(diff[i]) if np.isfinite(diff[i]) else float("inf"),
        max_rel=float(np.max(rel)),
        cosine=cosine,
        worst_index=tuple(int(x) for x in np.unravel_index(i, reference.shape)),
        reference=float(ref[i]),
        candidate=float(got[i]),
    )


def breach(fig: Figures, tol: Tolerance, extra_abs: float = 0.0) -> str | None:
    """Why ``fig`` breaks ``tol``, or None."""
    limit = tol.max_abs + extra_abs
    if not fig.max_abs <= limit:  # also catches NaN / inf
        return f"max|Δ| {fig.max_abs:.3g} > {limit:.3g}"
    if tol.max_rel is not None and not fig.max_rel <= tol.max_rel:
        return f"max rel {fig.max_rel:.3g} > {tol.max_rel:.3g}"
    if tol.min_cosine is not None and not fig.cosine >= tol.min_cosine:
        return f"cosine {fig.cosine:.7f} < {tol.min_cosine}"
    return None


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

    def measure(self, model: onnx.ModelProto | bytes) -> tuple[dict[str, Figures], list[Feed]]:
        """Worst figures per output over all feeds, and the candidate's raw outputs."""
        if len(self.feeds) != len(self.values):
            raise ValueError("a reference needs one set of values per feed")
        got = run_model(model, self.feeds, self.outputs)
        worst: dict[str, Figures] = {}
        for k, (ref, cand) in enumerate(zip(self.values, got)):
            for name in self.outputs:
                try:
                    fig = compare(ref[name], cand[name])
                except ValueError as exc:
                    raise ParityError(f"output '{name}' (feed {k}): {exc}") from None
                prev = worst.get(name)
                if prev is None or _worse(fig, prev):
                    worst[name] = fig
        return worst, got


def _worse(a: Figures, b: Figures) -> bool:
    return (not a.max_abs <= b.max_abs) or a.cosine < b.cosine


def first_breach(
    figures: Mapping[str, Figures], spec: ParitySpec, extra_abs: float = 0.0
) -> tuple[str, Figures, Tolerance, str] | None:
    for name, fig in figures.items():
        tol = spec.tolerance_for(name)
        why = breach(fig, tol, extra_abs)
        if why:
            return name, fig, tol, why
    return None


def parity_message(where: str, name: str, fig: Figures, tol: Tolerance, why: str) -> str:
    idx = ",".join(str(i) for i in fig.worst_index)
    return (
        f"parity failure {where}: output '{name}' {why}; worst element [{idx}] "
        f"reference {fig.reference:.7g} vs {fig.candidate:.7g} "
        f"(tolerance max_abs {tol.max_abs:g}"
        + (f", min_cosine {tol.min_cosine}" if tol.min_cosine is not None else "")
        + (f", max_rel {tol.max_rel:g}" if tol.max_rel is not None else "")
        + ")"
    )


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
