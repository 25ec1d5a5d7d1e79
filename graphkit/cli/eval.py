"""``graphkit eval RECIPE --data DIR``: the task's metric per batch size and runner."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphkit.cli import _args

HELP = "the task's metric per batch size and runner"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from graphkit.runners.select import EVAL_RUNNERS

    _args.add_recipe(p)
    _args.add_data(
        p, "dataset folder; anti-spoofing: repeat, with =bonafide/=spoof for plain folders", required=True
    )
    _args.add_runners(p, EVAL_RUNNERS, "torch, export, graphkit")
    _args.add_batches(p)
    _args.add_models(p)
    _args.add_weights(p)
    _args.add_trials(p)
    p.add_argument(
        "--asv-scores", type=Path, default=None, metavar="FILE", help="ASV score file, for min t-DCF"
    )
    _args.add_limit(p, 2)
    _args.add_out(p, "report folder (default <models>/eval)")


def run(args: argparse.Namespace) -> int:
    from graphkit.eval.evaluate import evaluate
    from graphkit.eval.report import render_eval, write_eval
    from graphkit.recipe import load_recipe

    report = evaluate(
        load_recipe(args.recipe),
        args.data,
        runners=args.runner,
        batch_sizes=args.batch,
        models_dir=args.models,
        weights=args.weights,
        trials=args.trials,
        asv_scores=args.asv_scores,
        limit=args.limit,
    )
    json_path, png_path = write_eval(report, args.out)
    print(render_eval(report))
    print(f"\nwrote {json_path} and {png_path}")
    return 0
