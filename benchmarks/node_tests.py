"""Sweep: graphkit's generic pipeline over the onnx package's backend node tests.

Every node test model (onnx.backend.test.loader, first data set) that onnxruntime can run goes
through simplify, set_batch_size (where it has a batch dim), conv1d_to_conv2d and cleanup, and
its outputs are compared with the unmodified model's on onnxruntime (graphkit.testing.sweep has the
rules). Prints progress, the count per outcome, every crash, parity break and timeout, and the
refusal and skip reasons grouped by pattern.

    python benchmarks/node_tests.py [--filter SUBSTR] [--limit N] [--workers 2] [--timeout S]
                                    [--static-batch] [--json out.json]

Exit status: 0 when there is no crash, parity break or timeout, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from graphkit.testing.cases import CRASH, OUTCOMES, PARITY, REFUSED, SKIPPED, TIMEOUT, Outcome  # noqa: E402
from graphkit.testing.node_tests import node_cases  # noqa: E402
from graphkit.testing.sweep import sweep  # noqa: E402

SHOWN = (CRASH, PARITY, TIMEOUT)  # listed one by one, then by message pattern
GROUPED = (REFUSED, SKIPPED)  # listed by message pattern


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--filter", default="", help="only tests whose name contains this")
    p.add_argument("--limit", type=int, default=None, help="only the first N tests (after --filter)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per model")
    p.add_argument("--static-batch", action="store_true", help="keep the declared input shapes")
    p.add_argument("--json", type=Path, default=None, help="write every outcome here")
    args = p.parse_args()

    t0 = time.perf_counter()
    cases = [c for c in node_cases() if args.filter in c.name][: args.limit]
    print(f"{len(cases)} node tests (loaded in {time.perf_counter() - t0:.1f} s)", flush=True)
    outcomes: list[Outcome] = []
    runs = sweep(cases, workers=args.workers, timeout=args.timeout, dynamic_batch=not args.static_batch)
    for outcome in runs:
        outcomes.append(outcome)
        if outcome.kind in SHOWN:
            print(f"  {outcome.kind}: {outcome.name}", flush=True)
        if len(outcomes) % 100 == 0 or len(outcomes) == len(cases):
            print(f"[{len(outcomes)}/{len(cases)}] {time.perf_counter() - t0:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    report(sorted(outcomes, key=lambda o: o.name), wall)
    if args.json is not None:
        data = {"wall_s": round(wall, 1), "outcomes": [o.as_dict() for o in outcomes]}
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 1 if any(o.kind in SHOWN for o in outcomes) else 0


def report(outcomes: list[Outcome], wall: float) -> None:
    counts = Counter(o.kind for o in outcomes)
    print(f"\n{len(outcomes)} models in {wall:.0f} s: " + ", ".join(f"{k} {counts[k]}" for k in OUTCOMES))
    for kind in SHOWN:
        chosen = [o for o in outcomes if o.kind == kind]
        if chosen:
            print(f"\n{kind} ({len(chosen)}):")
        for o in chosen:
            at = f" [{o.pass_name}]" if o.pass_name else ""
            print(f"  {o.name}{at}: {o.detail}")
    for kind in (*SHOWN, *GROUPED):
        groups: dict[str, list[str]] = defaultdict(list)
        for o in outcomes:
            if o.kind == kind:
                groups[f"[{o.pass_name}] " * bool(o.pass_name) + pattern(o)].append(o.name)
        if groups:
            print(f"\n{kind} ({counts[kind]}), by reason:")
        for key, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            more = f", … (+{len(names) - 3})" if len(names) > 3 else ""
            print(f"  {len(names):4d}  {key}\n        e.g. {', '.join(names[:3])}{more}")


def pattern(o: Outcome) -> str:
    """A message with the model's own names and numbers blanked, so alike reasons group."""
    text = o.detail.replace(o.name, "<model>")
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"(?<=_)\d+\b|\b\d+(\.\d+)?\b", "#", text)  # Expand_7, 256, 1.5
    text = re.sub(r"\s+", " ", text)
    return text[:200]


if __name__ == "__main__":
    sys.exit(main())
