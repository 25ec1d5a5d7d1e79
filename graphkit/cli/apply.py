"""``graphkit apply RECIPE``: the passes, the per-batch models, atc.sh and the manifest."""

from __future__ import annotations

import argparse
import json

from graphkit.cli import _args

HELP = "run a recipe: passes, per-batch models, atc.sh, manifest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_recipe(p)
    _args.add_out(p, "output folder (default out/<name>)")
    _args.add_batches(p)
    _args.add_weights(p)
    p.add_argument("--no-parity", action="store_true", help="skip the onnxruntime parity checks")
    p.add_argument("--dump-passes", action="store_true", help="write every intermediate model")
    _args.add_json(p, "the manifest instead of the table")
    p.add_argument(
        "--save-golden",
        action="store_true",
        help="also write golden/bs<N>.npz (reference inputs and outputs) and the inputs as .bin",
    )
    p.add_argument("--no-lint", action="store_true", help="skip graphkit lint on the final models")
    p.add_argument(
        "--self-contained",
        action="store_true",
        help="write each model with its weights inside it, instead of sharing them in weights/",
    )
    p.add_argument(
        "--no-emulate",
        action="store_true",
        help="skip the run of each final model under ATC's precision mode, emulated on CPU",
    )


def run(args: argparse.Namespace) -> int:
    from graphkit.pipeline.apply import apply_recipe
    from graphkit.pipeline.report import render_summary
    from graphkit.recipe import load_recipe

    result = apply_recipe(
        load_recipe(args.recipe),
        args.out,
        batch_sizes=args.batch,
        weights=args.weights,
        parity=not args.no_parity,
        dump_passes=args.dump_passes,
        save_golden=args.save_golden,
        lint=not args.no_lint,
        emulate=not args.no_emulate,
        self_contained=args.self_contained,
    )
    if args.json:
        print(json.dumps(result.manifest, indent=2))
    else:
        print(render_summary(result))
        from graphkit.ir.weights import WEIGHTS_DIR

        weights = sum(1 for f in result.files if f.parent.name == WEIGHTS_DIR)
        shared = f" + {weights} shared weight files in {WEIGHTS_DIR}/" if weights else ""
        print(
            f"\nwrote {len(result.files) - weights} files{shared} to {result.out_dir}/"
            " (run atc.sh on a CANN host)"
        )
    return 0
