"""Benchmark: memory and Ctrl-C latency of feature extraction for eval and preprocess.

A pass over N files (``graphkit eval``/``preprocess``'s feature extraction, with no model) in a
fresh process per measurement, each reporting its peak RSS (``getrusage``) above the baseline
of the same process with the recipe loaded:

  (a) ``lookahead``: :class:`graphkit.eval.inputs.RowReader`, rows read batch by batch and
      dropped, as ``run_batches`` does;
  (b) ``all-at-once``: the earlier extractor (every utterance submitted to a ThreadPoolExecutor
      at once, every row kept), for comparison;

beside the bytes of one batch of rows. The N files are links to the real LibriSpeech files
under ``../shared/data`` (repeated under new names), laid out as a bona fide folder for the
AASIST recipe (64,600 float32 samples a row).

    python benchmarks/eval_memory.py [--files 3080] [--batch 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GRAPHKIT_SHARED", ROOT.parent / "shared")).resolve()
SPEECH = SHARED / "data" / "librispeech-test-other-10spk"


def make_dataset(folder: Path, n_files: int) -> Path:
    """``n_files`` links to the real speech files, under distinct names, in one folder."""
    real = sorted(SPEECH.rglob("*.flac"))
    if not real:
        raise SystemExit(f"{SPEECH}: no .flac files (is ../shared there?)")
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        (folder / f"u{k:06d}.flac").symlink_to(real[k % len(real)])
    return folder


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def measure(mode: str, data: Path, batch: int) -> dict[str, float]:
    """One pass in this process (call it in a fresh one: peak RSS only grows)."""
    import numpy as np

    from graphkit.data.preprocess import make_batches
    from graphkit.eval.inputs import load_eval_data
    from graphkit.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "aasist.yaml")
    prepared = load_eval_data(recipe, [(data, "bonafide")], workers=2)
    base = _rss_mb()
    t = time.perf_counter()
    batches = make_batches(prepared.n_rows, batch)
    if mode == "lookahead":
        with prepared.open_rows(batch) as reader:
            for b in batches:
                x = reader.rows(b.items)
                del x
        window = reader.window
    else:  # the extractor before the look-ahead: everything submitted, every row kept
        from concurrent.futures import ThreadPoolExecutor

        extract = prepared.open_rows.__self__.rows  # type: ignore[attr-defined]  # the extractor's
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(extract, i) for i in range(len(prepared.utterance_ids))]
            for b in batches:
                x = np.stack([futures[int(i)].result()[0] for i in b.items])
                del x
        window = len(futures)
    row_bytes = 64600 * 4
    return {
        "files": len(prepared.utterance_ids),
        "peak_above_baseline_mb": round(_rss_mb() - base, 1),
        "one_batch_mb": round(batch * row_bytes / 2**20, 1),
        "window_utterances": window,
        "seconds": round(time.perf_counter() - t, 2),
    }


def ctrl_c_latency(data: Path, batch: int) -> float:
    """Seconds from SIGINT to exit of ``graphkit preprocess`` over the dataset, sent just
    after the first utterance is extracted."""
    import signal

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "graphkit", "preprocess", str(ROOT / "recipes" / "aasist.yaml")]
        cmd += ["--data", f"{data}=bonafide", "--batch", str(batch), "-o", f"{out}/pre"]
        proc = subprocess.Popen(cmd, cwd=out, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "utterances" in line:
                break
        time.sleep(1.0)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=600)
        return round(time.monotonic() - t, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=3080)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--json", type=Path)
    p.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.batch)))
        return
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "bonafide", args.files)
        for mode in ("lookahead", "all-at-once"):
            done = subprocess.run(
                [sys.executable, __file__, "--batch", str(args.batch), "--child", mode, str(data)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            print(mode, results[mode])
        results["ctrl_c_seconds"] = ctrl_c_latency(data, args.batch)
        print("Ctrl-C to exit:", results["ctrl_c_seconds"], "s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
