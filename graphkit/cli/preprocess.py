"""``graphkit preprocess RECIPE --data DIR --batch N -o DIR``: input batches for an NPU host."""

from __future__ import annotations

import argparse

from graphkit.cli import _args

HELP = "write input batches as .bin + index.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_recipe(p)
    _args.add_data(p, "dataset folder (repeat for anti-spoofing, with =bonafide/=spoof)", required=True)
    _args.add_batch(p, "rows per batch file: the batch size of the om that will run them", required=True)
    _args.add_trials(p)
    _args.add_limit(p, 1)
    _args.add_out(p, "folder for <input>/<input><k>.bin and index.json", required=True)


def run(args: argparse.Namespace) -> int:
    from graphkit.eval.inputs import preprocess_recipe
    from graphkit.recipe import load_recipe

    index = preprocess_recipe(
        load_recipe(args.recipe),
        args.data,
        batch=args.batch,
        out=args.out,
        trials=args.trials,
        limit=args.limit,
    )
    print(f"wrote {len(index.batches)} batches of {args.batch} to {args.out}/ ({index.root / 'index.json'})")
    return 0
