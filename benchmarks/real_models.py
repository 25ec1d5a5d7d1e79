"""Benchmark: `graphkit apply` on real public ONNX models from PyPI wheels (recipes/examples/).

For every example recipe: run the real CLI (`python -m graphkit apply RECIPE -o DIR`) as a
subprocess and record its exit code, last stderr line and wall time; then check every emitted
`<name>_bs<N>.onnx` against the ORIGINAL model without graphkit (tests/real_models.py: our own
seeded feeds, onnxruntime, worst max |Δ| over the outputs, onnx full_check, declared output
shapes).

    python benchmarks/real_models.py --fetch                 # models into recipes/examples/models/
    python benchmarks/real_models.py [RECIPE_NAME ...] [--json out.json]
    python benchmarks/real_models.py --graphkit-src /tmp/before --json before.json   # older code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import real_models as rm  # noqa: E402  (tests/real_models.py: the one home of fetch and the check)

MODELS_DIR = rm.EXAMPLES / "models"


def place(model_id: str) -> Path:
    """The model at recipes/examples/models/<id>.onnx, fetched into the cache first if needed."""
    target = MODELS_DIR / rm.MODELS[model_id].file_name
    if target.is_file():
        return target
    cached = rm.fetch(model_id)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(cached, tmp)
    os.replace(tmp, target)
    return target


def fetch_all() -> int:
    failed = 0
    for model_id, model in rm.MODELS.items():
        try:
            path = place(model_id)
            print(f"{model_id:24} {model.requirement:30} {path.relative_to(ROOT)}")
        except rm.FetchError as exc:
            failed += 1
            print(f"{model_id:24} {model.requirement:30} FAILED: {exc}")
    return 1 if failed else 0


def run_recipe(recipe: Path, out_root: Path, src: Path | None, timeout: float) -> dict:
    name = recipe.stem
    row: dict = {"recipe": name, "model": rm.model_id_of(recipe)}
    try:
        place(row["model"])
    except rm.FetchError as exc:
        return {**row, "exit": None, "message": f"fetch failed: {exc}", "seconds": 0.0, "checks": []}
    out = out_root / name
    env = dict(os.environ)
    if src is not None:  # the graphkit of another tree; the cwd must not shadow it (python -m)
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "graphkit", "apply", str(recipe), "-o", str(out)]
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=out_root)
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, stderr = "timeout", (exc.stderr or b"").decode(errors="replace") if exc.stderr else ""
    row["seconds"] = round(time.perf_counter() - t, 2)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    row["exit"] = code
    row["message"] = lines[-1].strip() if lines else ""
    row["checks"] = []
    if code == 0:
        for c in rm.check_emitted(recipe, out):
            row["checks"].append(
                {
                    "batch": c.batch,
                    "ok": c.ok,
                    "worst_abs": c.worst_abs,
                    "worst_output": c.worst_output,
                    "within_tolerance": c.within_tolerance,
                    "full_check": c.full_check,
                    "shape_problems": c.shape_problems,
                    "error": c.error,
                    "summary": c.summary(),
                }
            )
    return row


def _verdicts(row: dict) -> tuple[str, str, str, str]:
    if row["exit"] != 0:
        return f"exit {row['exit']}: {row['message']}", "-", "-", "-"
    checks = row["checks"]
    errors = [c["summary"] for c in checks if c["error"]]
    worst = max((c["worst_abs"] for c in checks if c["worst_abs"] is not None), default=None)
    over = [c["batch"] for c in checks if c["worst_abs"] is not None and not c["within_tolerance"]]
    delta = "-" if worst is None else f"{worst:.2g}" + (f" OVER (bs {over})" if over else "")
    full = [f"bs{c['batch']}: {c['full_check']}" for c in checks if c["full_check"]]
    shapes = [f"bs{c['batch']}: {p}" for c in checks for p in c["shape_problems"]]
    outcome = "ok" if all(c["ok"] for c in checks) else "exit 0, check failed"
    if errors:
        outcome += "; " + "; ".join(errors)
    return outcome, delta, "; ".join(full) or "ok", "; ".join(shapes) or "ok"


def render(rows: list[dict]) -> str:
    head = ("model", "outcome", "time s", "worst |Δ|", "full_check", "output shapes")
    body = [(r["recipe"], *_verdicts(r)[:1], f"{r['seconds']:.1f}", *_verdicts(r)[1:]) for r in rows]
    clip = [tuple(c if len(c) <= 90 else c[:87] + "..." for c in line) for line in body]
    widths = [max(len(line[i]) for line in [head, *clip]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*c) for c in clip])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", help="example recipe names (default: all)")
    p.add_argument("--fetch", action="store_true", help="fetch every model into recipes/examples/models/")
    p.add_argument("--graphkit-src", type=Path, default=None, help="run the CLI with PYTHONPATH=DIR")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per recipe")
    p.add_argument("--keep", type=Path, default=None, help="write the outputs here instead of a temp dir")
    args = p.parse_args()
    if args.fetch:
        return fetch_all()
    recipes = rm.example_recipes()
    if args.recipes:
        wanted = set(args.recipes)
        recipes = [r for r in recipes if r.stem in wanted]
        missing = wanted - {r.stem for r in recipes}
        if missing:
            p.error(f"no example recipe named {', '.join(sorted(missing))}")
    src = args.graphkit_src.resolve() if args.graphkit_src else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out_root = args.keep.resolve() if args.keep else Path(tmp)
        out_root.mkdir(parents=True, exist_ok=True)
        for recipe in recipes:
            row = run_recipe(recipe, out_root, src, args.timeout)
            rows.append(row)
            line = f"{row['recipe']}: {_verdicts(row)[0]} ({row['seconds']:.1f} s)"
            print(line, file=sys.stderr, flush=True)
    print(render(rows))
    ok = sum(1 for r in rows if r["exit"] == 0 and all(c["ok"] for c in r["checks"]))
    total = sum(r["seconds"] for r in rows)
    print(f"\n{ok}/{len(rows)} recipes ok; apply wall time {total:.1f} s; graphkit: {src or 'this tree'}")
    if args.json:
        args.json.write_text(json.dumps({"graphkit_src": str(src) if src else None, "rows": rows}, indent=2))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
