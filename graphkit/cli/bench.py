"""``graphkit bench RECIPE``: latency and throughput per batch size and runner."""

from __future__ import annotations

import argparse

from graphkit.cli import _args

HELP = "latency and throughput per batch size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from graphkit.runners.select import BENCH_RUNNERS

    _args.add_recipe(p)
    _args.add_runners(p, BENCH_RUNNERS, "export, graphkit")
    _args.add_batches(p)
    _args.add_models(p)
    _args.add_weights(p)
    p.add_argument(
        "--loops",
        type=_args.int_at_least(1, "--loops"),
        default=10,
        metavar="N",
        help="timed runs per batch size (default 10)",
    )
    p.add_argument(
        "--warmup",
        type=_args.int_at_least(0, "--warmup"),
        default=2,
        metavar="N",
        help="untimed runs before the timed ones (default 2)",
    )
    _args.add_out(p, "one DIR/<UTC time>/ per run and DIR/latest, the newest (default <models>/bench)")


def run(args: argparse.Namespace) -> int:
    from graphkit.eval.bench import bench
    from graphkit.eval.report import render_bench, write_bench
    from graphkit.recipe import load_recipe

    report = bench(
        load_recipe(args.recipe),
        runners=args.runner or ["export", "graphkit"],
        batch_sizes=args.batch,
        models_dir=args.models,
        weights=args.weights,
        loops=args.loops,
        warmup=args.warmup,
    )
    written = write_bench(report, args.out, models_dir=args.models)
    print(render_bench(report))
    print(f"\n{written.describe()}")
    return 0
