"""``graphkit bisect RECIPE``: the first pass, and site, that breaks the numbers."""

from __future__ import annotations

import argparse
import json

from graphkit.cli import _args

HELP = "find the first pass, and site, that breaks the numbers"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_recipe(p)
    _args.add_batch(p, "batch size (default: the first of the recipe's that fails)")
    _args.add_weights(p)
    _args.add_data(
        p, "gate on the task's metric over this dataset instead of the parity tolerance", required=False
    )
    _args.add_trials(p)
    _args.add_limit(p, 2)
    _args.add_metric(p)
    p.add_argument("--max-delta", type=float, default=0.0, help="allowed |Δ metric| (default 0)")
    _args.add_json(p)


def run(args: argparse.Namespace) -> int:
    from graphkit.debug.bisect import bisect_recipe, render
    from graphkit.recipe import load_recipe

    report = bisect_recipe(
        load_recipe(args.recipe),
        batch=args.batch,
        weights=args.weights,
        data=args.data,
        trials=args.trials,
        limit=args.limit,
        metric=args.metric,
        max_delta=args.max_delta,
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0 if report.final_breach is None else 1
