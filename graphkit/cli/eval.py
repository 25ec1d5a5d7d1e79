"""``graphkit eval RECIPE --data DIR``: the task's metric per batch size and runner."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphkit.cli import _args
from graphkit.errors import UsageError
from graphkit.eval.gate import parse_max_delta

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
    _args.add_out(p, "one DIR/<UTC time>/ per run and DIR/latest, the newest (default <models>/eval)")
    g = p.add_argument_group("gate (exit 1 when a runner drifts from the reference beyond a limit)")
    g.add_argument(
        "--max-delta",
        type=parse_max_delta,
        action="append",
        default=[],
        metavar="METRIC=X",
        help="|candidate - reference| of a task metric (eer_percent, roc_auc, min_tdcf, centroid_roc_auc, "
        "trial_roc_auc, min_dcf_0.01, min_dcf_0.05) at most X; repeatable",
    )
    _args.add_gate_limit(g, "--max-score-delta", "max |Δ| of the per-utterance (per-trial) scores at most X")
    g.add_argument(
        "--min-cosine",
        type=_cosine,
        default=None,
        metavar="X",
        help="minimum cosine between embeddings at least X (speaker verification)",
    )


def _cosine(text: str) -> float:
    value = _args.finite_float("--min-cosine")(text)
    if not -1.0 <= value <= 1.0:
        raise UsageError(f"--min-cosine must be in [-1, 1], got {value:g}")
    return value


def run(args: argparse.Namespace) -> int:
    from graphkit.eval.evaluate import evaluate
    from graphkit.eval.gate import gate_from
    from graphkit.eval.report import render_eval, render_gate, write_eval
    from graphkit.recipe import load_recipe

    gate = gate_from(args.max_delta, args.max_score_delta, args.min_cosine)
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
        gate=gate,
    )
    written = write_eval(report, args.out)  # written whatever the gate says
    print(render_eval(report))
    print(f"\n{written.describe()}")
    breaches = render_gate(report)
    for line in breaches:
        print(f"graphkit: {line}", file=sys.stderr)
    return 1 if breaches else 0
