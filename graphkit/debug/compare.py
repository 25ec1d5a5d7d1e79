"""Tensor-by-tensor accuracy comparison with msit's metrics (``graphkit compare A B``).

A and B are each an ONNX model, a golden file (graphkit.data.golden) or a folder of NPU outputs in
the files-runner format. A golden file is always the reference side; otherwise A is. Cases:

- model vs model: both run once under onnxruntime on the same inputs (a golden file's, or
  seeded random ones) with every intermediate tensor exposed as a graph output; every tensor
  name they share is compared in A's topological order and the first abnormal one is reported.
  A name kept for another quantity (onnxsim folds a BN into the Conv before it: the Conv's
  name now holds the value after the BN) that does not match is "rewritten", not abnormal
  (:func:`graphkit.debug.wiring.rewritten` says how the wiring tells).
- model vs golden: the model runs on the golden inputs; its outputs (and any ``tensor/``
  entries of the golden) are compared by name.
- golden vs NPU folder: the outputs msame / ais_bench wrote for the golden's batch key.
- golden vs golden: outputs saved on two machines.

Metrics (per tensor, float64, docs/ascend-toolchain.md §5.3) are :class:`graphkit.numerics.Stats`; a tensor
is abnormal when any :class:`Thresholds` limit trips or it cannot be compared (shape mismatch,
non-finite values that differ); KL is kept for distributions only (:func:`compare_tensor`).
Judge by the network outputs first (msit): an intermediate deviation matters when one is off.
A network output also fails where it breaks the output tolerance (:mod:`graphkit.debug.tolerance`:
the flags', the recipe's or graphkit's default), whatever msit's limits say.

This module judges values and reports: metrics, rows, the report and its CSV/JSON files and the
text rendering; it runs nothing. Producing the values (onnxruntime runs, golden files, NPU output
folders, one function per case) is :mod:`graphkit.debug.compare_run`, whose
:func:`~graphkit.debug.compare_run.compare_paths` is the entry point.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from graphkit._util import text_table
from graphkit.debug.tolerance import OutputTolerance, failure_line
from graphkit.numerics import Check, Stats, Tolerance, check, negligible, stats

Feed = dict[str, np.ndarray]  # a model's inputs by name (graphkit.debug.compare_run feeds them)


ELEMWISE = Tolerance(max_abs=1e-4, max_rel=None, min_cosine=None)  # the recipes' default bound
DISTRIBUTION_SUM_TOL = 1e-3  # |Σ_axis - 1| of a distribution (float16 Softmax sums pass)


@dataclass(frozen=True)
class Thresholds:
    """msit debug compare's default "abnormal" limits; any one tripped makes a tensor abnormal.

    ``elemwise`` is graphkit's pass/fail rule (:func:`graphkit.numerics.check`): every row shows
    whether it holds and the minimum tolerance that passes. Its ``max_abs`` is also the scale
    of "near zero": the relative limits (cosine, rel-euclid, KL, mean rel) do not trip on a
    tensor whose values all lie within it on both sides, where they measure noise. A network
    output is checked against ``outputs`` instead, and fails the comparison where it breaks it.
    """

    cosine: float = 0.99  # abnormal below
    rel_euclid: float = 0.05  # abnormal above (also kl, rmse, mean_rel)
    kl: float = 0.005
    rmse: float = 1.0
    mean_rel: float = 1.0
    elemwise: Tolerance = ELEMWISE
    outputs: OutputTolerance = OutputTolerance()  # noqa: RUF009 - frozen, so a shared default is safe

    def tripped(self, m: Stats, *, negligible: bool = False) -> list[str]:
        """The limits ``m`` breaks, as text (``not <=`` so that NaN trips too); with
        ``negligible`` (both sides within ``elemwise.max_abs`` of zero) only the absolute ones."""
        out = []
        if not negligible:
            if not m.cosine >= self.cosine:
                out.append(f"cosine {m.cosine:.6g} < {self.cosine:g}")
            if not m.rel_euclid <= self.rel_euclid:
                out.append(f"rel-euclid {m.rel_euclid:.3g} > {self.rel_euclid:g}")
            if m.kl is not None and not m.kl <= self.kl:
                out.append(f"KL {m.kl:.3g} > {self.kl:g}")
            if not m.mean_rel <= self.mean_rel:
                out.append(f"mean rel {m.mean_rel:.3g} > {self.mean_rel:g}")
        if not m.rmse <= self.rmse:
            out.append(f"RMSE {m.rmse:.3g} > {self.rmse:g}")
        return out


@dataclass(frozen=True)
class Row:
    """One compared tensor. ``fail_reason`` also carries notes that do not make it abnormal
    (a dtype difference, non-finite values identical on both sides). A ``rewritten`` row (why
    the name holds another quantity in the candidate, where the values do not match) is never
    abnormal; its metrics are for information."""

    tensor: str
    op_type: str
    shape: tuple[int, ...] | None  # the golden's
    shape_candidate: tuple[int, ...] | None
    dtype_golden: str
    dtype_candidate: str
    is_output: bool
    metrics: Stats | None
    abnormal: bool
    fail_reason: str = ""
    tripped: tuple[str, ...] = ()
    elemwise: Check | None = None  # graphkit's rule (Thresholds.elemwise), with its minimum tolerance
    rewritten: str = ""

    @property
    def status(self) -> str:
        return "rewritten" if self.rewritten else "abnormal" if self.abnormal else "ok"


def compare_tensor(
    name: str,
    golden: np.ndarray | None,
    candidate: np.ndarray | None,
    *,
    op_type: str = "",
    is_output: bool = False,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen, so a shared default is safe
    wiring: str = "",
) -> Row:
    """Compare one tensor pair; problems become the row's fail reason, never an exception.

    KL is kept only where the golden holds distributions along one of its axes (non-negative,
    summing to 1 within DISTRIBUTION_SUM_TOL: Softmax outputs); msit computes it for every
    non-negative tensor, where a ReLU map's "KL" measures nothing. ``wiring`` is why the name
    may hold another quantity in the candidate (:func:`~graphkit.debug.wiring.rewritten`); it
    excuses a mismatch and never hides a match: a row that would be abnormal is "rewritten"
    (metrics and tripped limits kept, for information), one that matches stays ok.
    """

    def row(
        m: Stats | None,
        abnormal: bool,
        why: list[str],
        tripped: Sequence[str] = (),
        elem: Check | None = None,
    ) -> Row:
        sides = (_shape(golden), _shape(candidate), _dtype(golden), _dtype(candidate))
        excused = wiring if abnormal else ""
        bad, text = abnormal and not excused, "; ".join(why)
        return Row(name, op_type, *sides, is_output, m, bad, text, tuple(tripped), elem, excused)

    if golden is None or candidate is None:
        return row(None, True, [f"not in the {'golden' if golden is None else 'candidate'}"])
    g, c = np.asarray(golden), np.asarray(candidate)
    if not (_numeric(g) and _numeric(c)):
        return row(None, True, [f"not numeric ({g.dtype} vs {c.dtype})"])
    reasons = [f"dtype {g.dtype} vs {c.dtype}"] if g.dtype != c.dtype else []
    if g.shape != c.shape:
        if not _same_but_unit_axes(g.shape, c.shape):
            return row(None, True, [f"shape {list(g.shape)} vs {list(c.shape)}", *reasons])
        # a lifted tensor (conv1d_to_conv2d keeps the name, adds a unit axis): same values
        reasons.append(f"shape {list(g.shape)} vs {list(c.shape)}: compared without the size-1 axes")
        c = c.reshape(g.shape)
    g64, c64 = g.astype(np.float64), c.astype(np.float64)
    elem = check(g64, c64, thresholds.outputs.tolerance_for(name) if is_output else thresholds.elemwise)
    fin_g, fin_c = np.isfinite(g64), np.isfinite(c64)
    bad = False
    if not (fin_g.all() and fin_c.all()):
        same = np.array_equal(fin_g, fin_c) and np.array_equal(g64[~fin_g], c64[~fin_c], equal_nan=True)
        if same:
            reasons.append(f"{int((~fin_g).sum())} non-finite values, identical on both sides")
        else:
            bad = True
            reasons.append(f"non-finite values: golden {_nonfinite(g64)}, candidate {_nonfinite(c64)}")
        keep = fin_g & fin_c
        g64, c64 = g64[keep], c64[keep]
    m = stats(g64, c64)
    if not _distribution(g):
        m = replace(m, kl=None)
    tripped = thresholds.tripped(m, negligible=negligible(g64, c64, thresholds.elemwise.max_abs))
    waived = [t for t in thresholds.tripped(m) if t not in tripped]
    if waived:
        near = thresholds.elemwise.max_abs
        reasons.append(f"{', '.join(waived)} not applied: every value is within {near:g} of zero")
    return row(m, bad or bool(tripped), reasons, tripped, elem)


def _distribution(g: np.ndarray) -> bool:
    """Whether ``g`` holds distributions along an axis of size > 1 (attention pools: axis 1)."""
    g = np.asarray(g, dtype=np.float64)  # a float16 sum in float16 drifts by more than the tolerance
    if g.size == 0 or not np.isfinite(g).all() or (g < 0).any():
        return False
    axes = [a for a in reversed(range(g.ndim)) if g.shape[a] > 1]
    return any(np.all(np.abs(g.sum(axis=a) - 1.0) <= DISTRIBUTION_SUM_TOL) for a in axes)


def _same_but_unit_axes(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two shapes differ only by size-1 axes: (N,C,L) vs (N,C,1,L)."""
    return [d for d in a if d != 1] == [d for d in b if d != 1]


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def _nonfinite(a: np.ndarray) -> str:
    return f"{int(np.isnan(a).sum())} NaN / {int(np.isinf(a).sum())} Inf"


def _shape(a: np.ndarray | None) -> tuple[int, ...] | None:
    return None if a is None else tuple(int(d) for d in np.shape(a))


def _dtype(a: np.ndarray | None) -> str:
    return "" if a is None else str(np.asarray(a).dtype)


@dataclass
class CompareReport:
    """All compared tensors (the reference's topological order where known)."""

    golden: str  # what the reference side is ("a.onnx (onnxruntime)")
    candidate: str
    mode: str  # model-model | model-golden | golden-files | golden-golden
    thresholds: Thresholds
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # e.g. {"untyped": 3, "not_in_candidate": 2}
    provenance: dict[str, Any] = field(default_factory=dict)  # environment, files (compare_run sets it)

    @property
    def first_divergent(self) -> Row | None:
        return next((r for r in self.rows if r.abnormal), None)

    @property
    def outputs_ok(self) -> bool:
        outs = [r for r in self.rows if r.is_output]
        return bool(outs) and not any(r.abnormal for r in outs) and not self.output_failures

    @property
    def output_failures(self) -> list[str]:
        """One line per network output beyond its tolerance (``Thresholds.outputs``)."""
        t = self.thresholds.outputs
        return [
            failure_line(r.tensor, r.elemwise, t.tolerance_for(r.tensor), t.source)
            for r in self.rows
            if r.is_output and r.elemwise is not None and not r.elemwise.ok
        ]

    @property
    def counts(self) -> dict[str, int]:
        outs = [r for r in self.rows if r.is_output]
        return {
            "compared": sum(not r.rewritten for r in self.rows),  # rewritten rows are not judged
            "rewritten": sum(bool(r.rewritten) for r in self.rows),
            "abnormal": sum(r.abnormal for r in self.rows),
            "outputs": len(outs),
            "outputs_abnormal": sum(r.abnormal for r in outs),
            "outputs_beyond_tolerance": sum(r.elemwise is not None and not r.elemwise.ok for r in outs),
            **self.skipped,
        }

    def as_dict(self) -> dict[str, Any]:
        first = self.first_divergent
        return _finite_json(
            {
                "golden": self.golden,
                "candidate": self.candidate,
                "mode": self.mode,
                "thresholds": asdict(self.thresholds),
                "outputs_ok": self.outputs_ok,
                "first_divergent": None if first is None else first.tensor,
                "output_failures": self.output_failures,
                "counts": self.counts,
                "notes": self.notes,
                "rows": [{**asdict(r), "status": r.status} for r in self.rows],
                **self.provenance,
            }
        )


def _finite_json(x: Any) -> Any:
    """JSON has no inf/NaN: write them as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_json(v) for v in x]
    return x


CSV_COLUMNS = (
    "tensor", "OpType", "Shape", "DataType (golden)", "DataType (candidate)", "IsOutputNode",
    "CosineSimilarity", "MaxAbsoluteError", "AccumulatedRelativeError", "RelativeEuclideanDistance",
    "KullbackLeiblerDivergence", "StandardDeviation", "MeanAbsoluteError", "RootMeanSquareError",
    "MaxRelativeError", "MeanRelativeError", "CompareFailReason", "IsPrecisionError",
    "ElementwiseOk", "MinToleranceAbs", "MinToleranceRel",  # graphkit's rule, after msit's columns
    "Status",  # ok | abnormal | rewritten
)  # fmt: skip
_CSV_METRICS = ("cosine", "max_abs", "accumulated_rel", "rel_euclid", "kl")
_CSV_METRICS_2 = ("mean_abs", "rmse", "max_rel", "mean_rel")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.9g}"


def csv_row(r: Row) -> list[str]:
    m = r.metrics
    shape = "" if r.shape is None else str(list(r.shape))
    head = [r.tensor, r.op_type, shape, r.dtype_golden, r.dtype_candidate, str(r.is_output)]
    if m is None:
        body = ["n/a"] * 10
    else:
        std = f"({m.golden_mean:.6g};{m.golden_std:.6g}),({m.candidate_mean:.6g};{m.candidate_std:.6g})"
        nums = [_num(getattr(m, k)) for k in (*_CSV_METRICS, *_CSV_METRICS_2)]
        body = [*nums[: len(_CSV_METRICS)], std, *nums[len(_CSV_METRICS) :]]
    moved = r.rewritten and f"rewritten: {r.rewritten}"
    reason = "; ".join(x for x in (moved, r.fail_reason, ", ".join(r.tripped)) if x)
    e = r.elemwise
    elem = ["n/a"] * 3 if e is None else [str(e.ok), _num(e.min_abs), _num(e.min_rel)]
    return [*head, *body, reason, str(r.abnormal), *elem, r.status]


def default_report_dir(a: Path, b: Path) -> Path:
    """Where ``graphkit compare A B`` writes its reports unless told: out/compare/A_vs_B."""
    return Path("out") / "compare" / f"{Path(a).stem}_vs_{Path(b).stem}"


def write_reports(report: CompareReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``compare.csv`` (msit's column order; StandardDeviation is "(mean;std)" of the
    golden, then of the candidate) and ``compare.json`` atomically; returns their paths."""
    from graphkit.ir.io import write_bytes

    out = Path(out_dir)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(csv_row(r) for r in report.rows)
    csv_path, json_path = out / "compare.csv", out / "compare.json"
    write_bytes(csv_path, buf.getvalue().encode())
    write_bytes(json_path, (json.dumps(report.as_dict(), indent=1, ensure_ascii=False) + "\n").encode())
    return csv_path, json_path


def render(report: CompareReport, limit: int = 10) -> str:
    """Outputs first, then the worst ``limit`` intermediates, the rewritten tensors and the
    first divergent tensor."""
    outs = [r for r in report.rows if r.is_output]
    inner = [r for r in report.rows if not r.is_output and not r.rewritten]
    moved = [r for r in report.rows if r.rewritten]
    worst = sorted(inner, key=_badness)[:limit]
    lines = [f"golden: {report.golden}", f"candidate: {report.candidate}", ""]
    lines += _table("network outputs", outs)
    first = report.first_divergent
    if inner:
        title = f"worst {len(worst)} of {len(inner)} intermediate tensors, {RANKING}"
        lines += ["", *_table(title, worst, ranked=True)]
    if moved:
        lines += ["", f"rewritten ({len(moved)}; another quantity under the same name, not judged):"]
        lines += [f"  {r.tensor} ({r.op_type or '-'}): {r.rewritten}" for r in moved[:limit]]
        lines += [f"  ... and {len(moved) - limit} more (compare.csv)"] if len(moved) > limit else []
    lines.append("")
    if first is None:
        lines.append("first divergent tensor: none (every compared tensor is within the thresholds)")
    else:
        why = ", ".join(x for x in (first.fail_reason, *first.tripped) if x)
        cos = "" if first.metrics is None else f" cosine {first.metrics.cosine:.6f}"
        lines.append(f"first divergent tensor: {first.tensor} ({first.op_type or '-'}){cos}: {why}")
    lines += [f"note: {n}" for n in report.notes]
    lines.append(
        f"elementwise rule: {report.thresholds.elemwise.describe()} per element (--max-abs, --max-rel); "
        "'min tol' is the smallest max_abs | max_rel that passes"
    )
    t = report.thresholds.outputs
    per = "".join(f"; {n}: {v.describe()}" for n, v in t.per_output.items())
    lines.append(f"network outputs must pass {t.default.describe()}{per} ({t.source})")
    lines += [f"FAIL: {line}" for line in report.output_failures]
    c = report.counts
    verdict = "PASS" if report.outputs_ok else "FAIL"
    failed = sum(r.abnormal or (r.elemwise is not None and not r.elemwise.ok) for r in outs)
    skipped = {"rewritten": c["rewritten"], **report.skipped}
    extra = "".join(f", {v} {k.replace('_', ' ')}" for k, v in skipped.items() if v)
    lines.append(
        f"{c['compared']} tensors compared, {c['abnormal']} abnormal{extra}; "
        f"network outputs: {c['outputs'] - failed}/{c['outputs']} within thresholds and tolerance: {verdict}"
    )
    return "\n".join(lines)


RANKING = "abnormal first, then by 1-cos, largest first"  # ties: by rel-euclid


def _badness(r: Row) -> tuple:
    m = r.metrics
    return (not r.abnormal, m.cosine if m else -2.0, -(m.rel_euclid if m else math.inf))


def _table(title: str, rows: Sequence[Row], *, ranked: bool = False) -> list[str]:
    """``ranked``: a ``1-cos`` column first, the figure :func:`_badness` ranks by (cosines of
    0.9999991 and 0.9999999 both print as 1.000000)."""
    head = (
        "tensor", "op", "shape", *(["1-cos"] if ranked else []), "cosine", "max|Δ|", "rel-euclid", "KL",
        "RMSE", "mean-rel", "elemwise", "min tol", "status",
    )  # fmt: skip
    table = [head]
    for r in rows:
        m = r.metrics
        nums = ["-"] * 6
        if m is not None:
            rest = (m.max_abs, m.rel_euclid, m.kl, m.rmse, m.mean_rel)
            nums = [f"{m.cosine:.6f}", *("-" if v is None else f"{v:.4g}" for v in rest)]  # KL
        if ranked:
            nums.insert(0, "-" if m is None else f"{1 - m.cosine:.2e}")
        e = r.elemwise
        nums += ["-", "-"] if e is None else ["ok" if e.ok else "FAIL", f"{e.min_abs:.2g} | {e.min_rel:.2g}"]
        status = "ABNORMAL" if r.abnormal else "ok"
        why = ", ".join(x for x in (r.fail_reason, *r.tripped) if x)
        name = r.tensor if len(r.tensor) <= 40 else r.tensor[:18] + "…" + r.tensor[-21:]
        shape = "-" if r.shape is None else "x".join(map(str, r.shape)) or "scalar"
        table.append((name, r.op_type or "-", shape, *nums, f"{status} {why}".strip()))
    return [f"{title}:", *text_table(table).split("\n")]
