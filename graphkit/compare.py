"""Tensor-by-tensor accuracy comparison with msit's metrics (``graphkit compare A B``).

A and B are each an ONNX model, a golden file (graphkit.golden) or a folder of NPU outputs in
the files-runner format. A golden file is always the reference side; otherwise A is. Cases:

- model vs model: both run once under onnxruntime on the same inputs (a golden file's, or
  seeded random ones) with every intermediate tensor exposed as a graph output; every tensor
  name they share is compared in A's topological order and the first abnormal one is reported.
- model vs golden: the model runs on the golden inputs; its outputs (and any ``tensor/``
  entries of the golden) are compared by name.
- golden vs NPU folder: the outputs msame / ais_bench wrote for the golden's batch key.
- golden vs golden: outputs saved on two machines.

Metrics (per tensor, float64, docs/ascend-toolchain.md §5.3) are in :class:`Metrics`; a tensor
is abnormal when any :class:`Thresholds` limit trips or it cannot be compared (shape mismatch,
non-finite values that differ). As msit says, judge by the network outputs first: an
intermediate deviation matters only when an output is off.

This module judges values and reports: metrics, rows, the report and its CSV/JSON files, the
text rendering and the CLI. Producing the values (onnxruntime runs, golden files, NPU output
folders, one function per case) is :mod:`graphkit.compare_run`, which :func:`compare_paths`
imports on first use.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import UsageError

REL_FLOOR = float(np.finfo(np.float32).eps)  # |golden| at or below this counts as zero
KL_EPS = 1e-10  # floor for the candidate's probabilities in KL(golden || candidate)

Feed = dict[str, np.ndarray]  # a model's inputs by name (graphkit.compare_run feeds them)


@dataclass(frozen=True)
class Thresholds:
    """msit debug compare's default "abnormal" limits; any one tripped makes a tensor abnormal."""

    cosine: float = 0.99  # abnormal below
    rel_euclid: float = 0.05  # abnormal above (also kl, rmse, mean_rel)
    kl: float = 0.005
    rmse: float = 1.0
    mean_rel: float = 1.0

    def tripped(self, m: Metrics) -> list[str]:
        """The limits ``m`` breaks, as text (``not <=`` so that NaN trips too)."""
        out = []
        if not m.cosine >= self.cosine:
            out.append(f"cosine {m.cosine:.6g} < {self.cosine:g}")
        if not m.rel_euclid <= self.rel_euclid:
            out.append(f"rel-euclid {m.rel_euclid:.3g} > {self.rel_euclid:g}")
        if m.kl is not None and not m.kl <= self.kl:
            out.append(f"KL {m.kl:.3g} > {self.kl:g}")
        if not m.rmse <= self.rmse:
            out.append(f"RMSE {m.rmse:.3g} > {self.rmse:g}")
        if not m.mean_rel <= self.mean_rel:
            out.append(f"mean rel {m.mean_rel:.3g} > {self.mean_rel:g}")
        return out


@dataclass(frozen=True)
class Metrics:
    """msit's per-tensor metrics of golden g against candidate c (n elements, d = c - g).

    - cosine: g·c / (‖g‖‖c‖); 1 when both are all zero, 0 when only one is.
    - max_abs, mean_abs: max and mean of |d|.
    - Relative errors use r_i = |d_i| / |g_i| where |g_i| > REL_FLOOR (float32 eps) and r_i = 0
      where g_i is zero or below it, as msit does: a floor divisor instead would turn every
      exact zero of a ReLU output into an error of ~1e7·|d_i|. max_rel = max r_i,
      mean_rel = Σ r_i / n, accumulated_rel = Σ r_i.
    - rmse: sqrt(Σ d_i² / n). rel_euclid: ‖d‖ / ‖g‖ (0 when both are zero, inf when only g is).
    - kl: KL(p ‖ q) = Σ p_i ln(p_i / max(q_i, KL_EPS)) with p = g / Σg, q = c / Σc, terms with
      p_i = 0 dropped; only when both sides are non-negative with positive sums (scores,
      probabilities, energies), else None: signed data is no distribution.
    - mean/std of each side (msit's StandardDeviation column).
    Empty tensors give the metrics of two equal tensors.
    """

    cosine: float
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    accumulated_rel: float
    rmse: float
    rel_euclid: float
    kl: float | None
    golden_mean: float
    golden_std: float
    candidate_mean: float
    candidate_std: float


def metrics(golden: np.ndarray, candidate: np.ndarray) -> Metrics:
    """The metrics of two finite tensors of one shape (see :class:`Metrics`)."""
    g = np.asarray(golden, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if g.shape != c.shape:
        raise ValueError(f"{g.size} golden values vs {c.size} candidate values")
    if g.size == 0:
        return Metrics(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
    d = c - g
    ad = np.abs(d)
    ng, nc, nd = (float(np.linalg.norm(v)) for v in (g, c, d))
    if ng == 0.0 or nc == 0.0:
        cosine = 1.0 if ng == nc else 0.0
    else:
        cosine = float(np.clip(np.dot(g, c) / (ng * nc), -1.0, 1.0))
    big = np.abs(g) > REL_FLOOR
    rel = np.zeros_like(g)
    rel[big] = ad[big] / np.abs(g[big])
    return Metrics(
        cosine=cosine,
        max_abs=float(ad.max()),
        mean_abs=float(ad.mean()),
        max_rel=float(rel.max()),
        mean_rel=float(rel.mean()),
        accumulated_rel=float(rel.sum()),
        rmse=float(np.sqrt(np.mean(d * d))),
        rel_euclid=nd / ng if ng > 0 else (0.0 if nd == 0 else math.inf),
        kl=kl_divergence(g, c),
        golden_mean=float(g.mean()),
        golden_std=float(g.std()),
        candidate_mean=float(c.mean()),
        candidate_std=float(c.std()),
    )


def kl_divergence(golden: np.ndarray, candidate: np.ndarray) -> float | None:
    """KL(golden ‖ candidate) of the two tensors normalised to sum 1, or None (see Metrics)."""
    g = np.asarray(golden, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if g.size == 0 or (g < 0).any() or (c < 0).any() or g.sum() <= 0 or c.sum() <= 0:
        return None
    p, q = g / g.sum(), c / c.sum()
    keep = p > 0  # p ln p -> 0 as p -> 0
    return max(0.0, float(np.sum(p[keep] * np.log(p[keep] / np.maximum(q[keep], KL_EPS)))))


@dataclass(frozen=True)
class Row:
    """One compared tensor. ``fail_reason`` also carries notes that do not make it abnormal
    (a dtype difference, non-finite values identical on both sides)."""

    tensor: str
    op_type: str
    shape: tuple[int, ...] | None  # the golden's
    shape_candidate: tuple[int, ...] | None
    dtype_golden: str
    dtype_candidate: str
    is_output: bool
    metrics: Metrics | None
    abnormal: bool
    fail_reason: str = ""
    tripped: tuple[str, ...] = ()


def compare_tensor(
    name: str,
    golden: np.ndarray | None,
    candidate: np.ndarray | None,
    *,
    op_type: str = "",
    is_output: bool = False,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen, so a shared default is safe
) -> Row:
    """Compare one tensor pair; problems become the row's fail reason, never an exception."""

    def row(m: Metrics | None, abnormal: bool, reasons: list[str], tripped: Sequence[str] = ()) -> Row:
        shapes = (_shape(golden), _shape(candidate))
        dtypes = (_dtype(golden), _dtype(candidate))
        return Row(
            name, op_type, *shapes, *dtypes, is_output, m, abnormal, "; ".join(reasons), tuple(tripped)
        )

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
    m = metrics(g64, c64)
    tripped = thresholds.tripped(m)
    return row(m, bad or bool(tripped), reasons, tripped)


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

    @property
    def first_divergent(self) -> Row | None:
        return next((r for r in self.rows if r.abnormal), None)

    @property
    def outputs_ok(self) -> bool:
        outs = [r for r in self.rows if r.is_output]
        return bool(outs) and not any(r.abnormal for r in outs)

    @property
    def counts(self) -> dict[str, int]:
        outs = [r for r in self.rows if r.is_output]
        return {
            "compared": len(self.rows),
            "abnormal": sum(r.abnormal for r in self.rows),
            "outputs": len(outs),
            "outputs_abnormal": sum(r.abnormal for r in outs),
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
                "counts": self.counts,
                "notes": self.notes,
                "rows": [asdict(r) for r in self.rows],
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
        body = [
            *(_num(getattr(m, k)) for k in _CSV_METRICS),
            std,
            *(_num(getattr(m, k)) for k in _CSV_METRICS_2),
        ]
    reason = "; ".join(x for x in (r.fail_reason, ", ".join(r.tripped)) if x)
    return [*head, *body, reason, str(r.abnormal)]


def write_reports(report: CompareReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``compare.csv`` (msit's column order; StandardDeviation is "(mean;std)" of the
    golden, then of the candidate) and ``compare.json`` atomically; returns their paths."""
    from graphkit.io import write_bytes

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
    """Outputs first, then the first divergent tensor and the worst ``limit`` intermediates."""
    outs = [r for r in report.rows if r.is_output]
    inner = [r for r in report.rows if not r.is_output]
    worst = sorted(inner, key=_badness)[:limit]
    lines = [f"golden: {report.golden}", f"candidate: {report.candidate}", ""]
    lines += _table("network outputs", outs)
    first = report.first_divergent
    if inner:
        lines += ["", *_table(f"worst {len(worst)} of {len(inner)} intermediate tensors", worst)]
    lines.append("")
    if first is None:
        lines.append("first divergent tensor: none (every compared tensor is within the thresholds)")
    else:
        why = ", ".join(x for x in (first.fail_reason, *first.tripped) if x)
        cos = "" if first.metrics is None else f" cosine {first.metrics.cosine:.6f}"
        lines.append(f"first divergent tensor: {first.tensor} ({first.op_type or '-'}){cos}: {why}")
    lines += [f"note: {n}" for n in report.notes]
    c = report.counts
    verdict = "PASS" if report.outputs_ok else "FAIL"
    extra = "".join(f", {v} {k.replace('_', ' ')}" for k, v in report.skipped.items() if v)
    lines.append(
        f"{c['compared']} tensors compared, {c['abnormal']} abnormal{extra}; "
        f"network outputs: {c['outputs'] - c['outputs_abnormal']}/{c['outputs']} within thresholds: {verdict}"
    )
    return "\n".join(lines)


def _badness(r: Row) -> tuple:
    m = r.metrics
    return (not r.abnormal, m.cosine if m else -2.0, -(m.rel_euclid if m else math.inf))


def _table(title: str, rows: Sequence[Row]) -> list[str]:
    head = ("tensor", "op", "shape", "cosine", "max|Δ|", "rel-euclid", "KL", "RMSE", "mean-rel", "status")
    table = [head]
    for r in rows:
        m = r.metrics
        nums = ["-"] * 6
        if m is not None:
            rest = (m.max_abs, m.rel_euclid, m.kl, m.rmse, m.mean_rel)
            nums = [f"{m.cosine:.6f}", *("n/a" if v is None else f"{v:.4g}" for v in rest)]
        status = "ABNORMAL" if r.abnormal else "ok"
        why = ", ".join(x for x in (r.fail_reason, *r.tripped) if x)
        name = r.tensor if len(r.tensor) <= 40 else r.tensor[:18] + "…" + r.tensor[-21:]
        shape = "-" if r.shape is None else "x".join(map(str, r.shape)) or "scalar"
        table.append((name, r.op_type or "-", shape, *nums, f"{status} {why}".strip()))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [f"{title}:"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return lines


def compare_paths(
    a: Path,
    b: Path,
    *,
    inputs: Path | None = None,
    batch: int | None = None,
    seed: int = 0,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen, so a shared default is safe
    outputs_only: bool = False,
) -> CompareReport:
    """Compare A (reference, unless B is a golden file) against B; see the module docstring.

    ``inputs`` (a golden file) and ``batch``/``seed`` (seeded inputs, dim 0 = batch) apply
    to model vs model only; ``outputs_only`` compares the network outputs alone.
    """
    from graphkit.compare_run import dispatch  # it imports this module: load it on first use

    return dispatch(
        a, b, inputs=inputs, batch=batch, seed=seed, thresholds=thresholds, outputs_only=outputs_only
    )


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to ``sub`` (argparse's subparsers action)."""
    t = Thresholds()
    p = sub.add_parser(
        "compare",
        parents=[common],
        help="tensor-by-tensor accuracy (msit metrics): models, golden files, NPU outputs",
    )
    p.add_argument("a", type=Path, help="reference: model.onnx, golden .npz")
    p.add_argument("b", type=Path, help="candidate: model.onnx, golden .npz, or a folder of NPU outputs")
    p.add_argument("--inputs", type=Path, default=None, metavar="GOLDEN.npz", help="feed its inputs")
    p.add_argument("--batch", type=int, default=None, help="dim 0 of seeded inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--outputs-only", action="store_true", help="compare the network outputs alone")
    p.add_argument("--cosine", type=float, default=t.cosine, help=f"abnormal below (default {t.cosine})")
    for flag, dest in (
        ("--rel-euclid", "rel_euclid"),
        ("--kl", "kl"),
        ("--rmse", "rmse"),
        ("--mean-rel", "mean_rel"),
    ):
        default = getattr(t, dest)
        p.add_argument(
            flag, dest=dest, type=float, default=default, help=f"abnormal above (default {default})"
        )
    p.add_argument("-o", "--out", type=Path, default=None, help="report folder (default out/compare/A_vs_B)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.set_defaults(func=command)
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``graphkit compare``; 0 when every network output is within the thresholds, else 1."""
    for flag in ("cosine", "rel_euclid", "kl", "rmse", "mean_rel"):
        if not math.isfinite(getattr(args, flag)):  # NaN would mark every tensor abnormal
            raise UsageError(f"--{flag.replace('_', '-')} must be a finite number, got {getattr(args, flag)}")
    thresholds = Thresholds(
        cosine=args.cosine, rel_euclid=args.rel_euclid, kl=args.kl, rmse=args.rmse, mean_rel=args.mean_rel
    )
    report = compare_paths(
        args.a,
        args.b,
        inputs=args.inputs,
        batch=args.batch,
        seed=args.seed,
        thresholds=thresholds,
        outputs_only=args.outputs_only,
    )
    out = args.out or Path("out") / "compare" / f"{Path(args.a).stem}_vs_{Path(args.b).stem}"
    csv_path, json_path = write_reports(report, out)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, ensure_ascii=False))
    else:
        print(render(report))
        print(f"\nwrote {csv_path} and {json_path}")
    return 0 if report.outputs_ok else 1
