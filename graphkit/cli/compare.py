"""``graphkit compare A B``: tensor-by-tensor accuracy of models, golden files and NPU outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from graphkit.cli import _args

HELP = "tensor-by-tensor accuracy (msit metrics): models, golden files, NPU outputs"
_ABOVE = (("--rel-euclid", "rel_euclid"), ("--kl", "kl"), ("--rmse", "rmse"), ("--mean-rel", "mean_rel"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from graphkit.debug.compare import Thresholds

    t = Thresholds()
    p.add_argument("a", type=Path, help="reference: model.onnx, golden .npz")
    p.add_argument("b", type=Path, help="candidate: model.onnx, golden .npz, or a folder of NPU outputs")
    p.add_argument("--inputs", type=Path, default=None, metavar="GOLDEN.npz", help="feed its inputs")
    p.add_argument("--batch", type=int, default=None, metavar="N", help="dim 0 of seeded inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--outputs-only", action="store_true", help="compare the network outputs alone")
    p.add_argument(
        "--emulate",
        default=None,
        metavar="MODE",
        help="run model B under ATC's --precision_mode MODE (force_fp16, allow_fp32_to_fp16, "
        "allow_mix_precision, must_keep_origin_dtype, force_fp32), emulated on onnxruntime CPU "
        "(not an NPU measurement); compare A B B.onnx --emulate force_fp16 shows what fp16 does",
    )
    cosine = _args.finite_float("--cosine")
    p.add_argument("--cosine", type=cosine, default=t.cosine, help=f"abnormal below (default {t.cosine})")
    for flag, dest in _ABOVE:
        default = getattr(t, dest)
        kind = _args.finite_float(flag)
        p.add_argument(
            flag, dest=dest, type=kind, default=default, help=f"abnormal above (default {default})"
        )
    e = t.elemwise
    p.add_argument(
        "--max-abs",
        type=_args.finite_float("--max-abs", minimum=0.0),
        default=None,
        help=f"elementwise rule |Δ| <= max_abs + max_rel·|ref|, shown per tensor (default {e.max_abs:g}); "
        "given, it is also the network outputs' tolerance (else the recipe's, from the manifest.json of "
        "an apply output folder, else graphkit's default); the relative limits are not applied to "
        "tensors within max_abs of zero",
    )
    p.add_argument(
        "--max-rel",
        type=_args.finite_float("--max-rel", minimum=0.0),
        default=None,
        help="the rule's max_rel (default 0)",
    )
    _args.add_out(p, "report folder (default out/compare/A_vs_B)")
    _args.add_json(p, "the JSON report instead of the table")


def run(args: argparse.Namespace) -> int:
    """0 when every network output is within msit's thresholds and its tolerance, else 1."""
    from graphkit.debug.compare import ELEMWISE, Thresholds, default_report_dir, render, write_reports
    from graphkit.debug.compare_run import compare_paths
    from graphkit.debug.tolerance import output_tolerance
    from graphkit.numerics import Tolerance

    max_abs = ELEMWISE.max_abs if args.max_abs is None else args.max_abs
    elemwise = Tolerance(max_abs=max_abs, max_rel=args.max_rel, min_cosine=None)
    limits = {dest: getattr(args, dest) for _, dest in _ABOVE}
    outputs = output_tolerance(args.a, args.b, max_abs=args.max_abs, max_rel=args.max_rel)
    thresholds = Thresholds(cosine=args.cosine, **limits, elemwise=elemwise, outputs=outputs)
    options = {
        "batch": args.batch,
        "seed": args.seed,
        "thresholds": thresholds,
        "outputs_only": args.outputs_only,
    }
    if args.emulate is not None:
        from graphkit.debug.compare_emulate import compare_emulated

        report = compare_emulated(args.a, args.b, args.emulate, inputs=args.inputs, **options)
    else:
        report = compare_paths(args.a, args.b, inputs=args.inputs, **options)
    csv_path, json_path = write_reports(report, args.out or default_report_dir(args.a, args.b))
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, ensure_ascii=False))
    else:
        print(render(report))
        print(f"\nwrote {csv_path} and {json_path}")
    for line in report.output_failures:  # on stderr too: the reason a CI job failed, even with --json
        print(f"graphkit: compare failed: {line}", file=sys.stderr)
    return 0 if report.outputs_ok else 1
