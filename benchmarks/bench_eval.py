"""Benchmark: `graphkit eval` throughput against pure inference on the same runner, one run.

(a) pure inference: the dataset's input rows are prepared first (untimed), then only the
    runner's batches are timed;
(b) the whole pipeline: `evaluate()` — listing the dataset, decoding audio, features (in
    background threads, ahead of inference), inference, metric — timed end to end.
Both in utterances per second; the ratio (b)/(a) has a target of >= 0.9.

    python benchmarks/bench_eval.py [--recipe recipes/ecapa.yaml] [--batch 16] [--models DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "ecapa.yaml")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/librispeech-test-other-10spk")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--models", type=Path, default=None, help="graphkit apply output (made if absent)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from graphkit.eval.evaluate import evaluate
    from graphkit.eval.inputs import load_eval_data, run_batches
    from graphkit.pipeline.apply import apply_recipe
    from graphkit.recipe import load_recipe
    from graphkit.runners.onnxruntime import OnnxruntimeRunner

    recipe = load_recipe(args.recipe)
    task = recipe.task
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models
        if models is None:
            models = Path(tmp)
            apply_recipe(recipe, models, batch_sizes=[args.batch], parity=False)
        path = models / f"{recipe.name}_bs{args.batch}.onnx"
        data = [(args.data, None)]

        # (a) pure inference: every row extracted first, untimed
        prepared = load_eval_data(recipe, data)
        rows = [prepared.features(i) for i in range(prepared.n_rows)]
        with OnnxruntimeRunner(path, label="graphkit") as runner:
            run_batches(runner, prepared, args.batch, task.input, task.output)  # warm-up
            t = time.perf_counter()
            run_batches(runner, prepared, args.batch, task.input, task.output)
            pure_s = time.perf_counter() - t
        n_utts = len(prepared.utterance_ids)
        del rows

        # (b) the whole pipeline
        t = time.perf_counter()
        evaluate(recipe, data, runners=["graphkit"], batch_sizes=[args.batch], models_dir=models)
        whole_s = time.perf_counter() - t
    pure, whole = n_utts / pure_s, n_utts / whole_s
    print(f"{recipe.name}, {n_utts} utterances, batch {args.batch}, onnxruntime CPU")
    print(f"  pure inference           {pure:7.2f} utt/s ({pure_s:.1f} s)")
    print(f"  whole eval pipeline      {whole:7.2f} utt/s ({whole_s:.1f} s)")
    print(f"  ratio (target >= 0.9)    {whole / pure:7.2f}")
    return 0 if np.isfinite(whole / pure) else 1


if __name__ == "__main__":
    sys.exit(main())
