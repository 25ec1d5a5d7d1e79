"""``graphkit compare A B``: tensor-by-tensor accuracy of models, golden files and NPU outputs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from graphkit.debug.compare import Thresholds, render, write_reports
from graphkit.debug.compare_run import compare_paths
from graphkit.errors import UsageError
from graphkit.numerics import Tolerance

HELP = "tensor-by-tensor accuracy (msit metrics): models, golden files, NPU outputs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    t = Thresholds()
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
    e = t.elemwise
    p.add_argument(
        "--max-abs",
        type=float,
        default=e.max_abs,
        help=f"elementwise rule |Δ| <= max_abs + max_rel·|ref|, shown per tensor (default {e.max_abs:g}); "
        "the relative limits are not applied to tensors within max_abs of zero",
    )
    p.add_argument("--max-rel", type=float, default=None, help="the rule's max_rel (default 0)")
    p.add_argument("-o", "--out", type=Path, default=None, help="report folder (default out/compare/A_vs_B)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")


def run(args: argparse.Namespace) -> int:
    """Run ``graphkit compare``; 0 when every network output is within the thresholds, else 1."""
    for flag in ("cosine", "rel_euclid", "kl", "rmse", "mean_rel", "max_abs", "max_rel"):
        value = getattr(args, flag)
        if value is not None and not math.isfinite(value):  # NaN would mark every tensor abnormal
            raise UsageError(f"--{flag.replace('_', '-')} must be a finite number, got {value}")
    if args.max_abs < 0 or (args.max_rel is not None and args.max_rel < 0):
        raise UsageError("--max-abs and --max-rel must be >= 0")
    thresholds = Thresholds(
        cosine=args.cosine,
        rel_euclid=args.rel_euclid,
        kl=args.kl,
        rmse=args.rmse,
        mean_rel=args.mean_rel,
        elemwise=Tolerance(max_abs=args.max_abs, max_rel=args.max_rel, min_cosine=None),
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
