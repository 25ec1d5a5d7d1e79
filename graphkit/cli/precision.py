"""``graphkit precision RECIPE``: the nodes to keep in fp32 so that ATC's fp16 numerics pass a gate."""

from __future__ import annotations

import argparse
import json

from graphkit.cli import _args

HELP = "find the nodes to keep in fp32 under ATC's fp16 precision (emulated on CPU)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_recipe(p)
    _args.add_models(p)
    _args.add_batch(p, "the emitted model's batch size (default: the recipe's smallest)")
    _args.add_weights(p)
    p.add_argument(
        "--mode",
        default=None,
        metavar="MODE",
        help="ATC --precision_mode to emulate (default: the recipe's atc.precision_mode, else force_fp16)",
    )
    _args.add_data(p, "gate on the task over this dataset instead of the parity tolerance", required=False)
    _args.add_trials(p)
    _args.add_limit(p, 2)
    _args.add_metric(p)
    _args.add_gate_limit(p, "--max-delta", "with --data: allowed |Δ metric| against the fp32 emitted model")
    _args.add_gate_limit(p, "--max-score-delta", "with --data: allowed max |Δ| of the per-utterance scores")
    _args.add_gate_limit(
        p, "--max-abs", "parity gate: allowed |Δ| of every output (default: the recipe's parity tolerance)"
    )
    _args.add_out(p, "folder for keep_dtype.cfg (default: the models folder)")
    _args.add_json(p)


def run(args: argparse.Namespace) -> int:
    from graphkit.debug._precision_gates import run_precision
    from graphkit.debug.precision import as_json, render
    from graphkit.errors import UsageError
    from graphkit.recipe import load_recipe

    if args.data and args.max_abs is not None:
        raise UsageError("--max-abs is the parity gate's; with --data use --max-delta or --max-score-delta")
    result = run_precision(
        load_recipe(args.recipe),
        models_dir=args.models,
        batch=args.batch,
        mode=args.mode,
        weights=args.weights,
        data=args.data,
        trials=args.trials,
        limit=args.limit,
        metric=args.metric,
        max_delta=args.max_delta,
        max_score_delta=args.max_score_delta,
        max_abs=args.max_abs,
        out=args.out,
    )
    written = str(result.written) if result.written else None
    if args.json:
        extra = {"model": str(result.model), "batch": result.batch, "written": written}
        print(json.dumps(as_json(result.advice, extra), indent=2))
    else:
        print(render(result.advice, written=written))
    return 0 if result.advice.found else 1
