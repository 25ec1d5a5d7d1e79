"""The command line: thin subcommands over the library.

Exit codes: 0 ok, 1 parity failure, 2 bad recipe, bad model, bad data or bad usage.
Errors are one line on stderr; anything that is not a GraphkitError is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from graphkit import __version__
from graphkit.errors import GraphkitError, UsageError

log = logging.getLogger("graphkit")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep our one-line form
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphkit", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"graphkit {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    # the same flags after the subcommand (SUPPRESS: absent there, they keep the main value)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser(
        "apply", parents=[common], help="run a recipe: passes, per-batch models, atc.sh, manifest"
    )
    a.add_argument("recipe", type=Path)
    a.add_argument("-o", "--out", type=Path, default=None, help="output folder (default out/<name>)")
    a.add_argument("--batch", default=None, help="comma-separated batch sizes (default: recipe's)")
    a.add_argument("--weights", type=Path, default=None, help="checkpoint for a built-in model")
    a.add_argument("--no-parity", action="store_true", help="skip the onnxruntime parity checks")
    a.add_argument("--dump-passes", action="store_true", help="write every intermediate model")
    a.add_argument("--json", action="store_true", help="print the manifest instead of the table")
    a.add_argument(
        "--save-golden",
        action="store_true",
        help="also write golden/bs<N>.npz (reference inputs and outputs) and the inputs as .bin",
    )
    a.add_argument("--no-lint", action="store_true", help="skip graphkit lint on the final models")

    e = sub.add_parser("eval", parents=[common], help="the task's metric per batch size and runner")
    e.add_argument("recipe", type=Path)
    e.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR[=LABEL]",
        help="dataset folder; anti-spoofing: repeat, with =bonafide/=spoof for plain folders",
    )
    e.add_argument(
        "--runner",
        action="append",
        default=[],
        help="torch, export, graphkit, files=DIR, ais_bench[=DEVICE] (default: torch, export, graphkit)",
    )
    e.add_argument("--batch", default=None, help="comma-separated batch sizes (default: recipe's)")
    e.add_argument("--models", type=Path, default=None, help="graphkit apply's output (default out/<name>)")
    e.add_argument("--weights", type=Path, default=None)
    e.add_argument("--trials", type=Path, default=None, help="trial list (VoxCeleb format)")
    e.add_argument("--asv-scores", type=Path, default=None, help="ASV score file, for min t-DCF")
    e.add_argument("--limit", type=int, default=None, help="evaluate N evenly spaced utterances")
    e.add_argument("-o", "--out", type=Path, default=None, help="report folder (default <models>/eval)")

    b = sub.add_parser("bench", parents=[common], help="latency and throughput per batch size")
    b.add_argument("recipe", type=Path)
    b.add_argument(
        "--runner",
        action="append",
        default=[],
        help="export, graphkit, torch, ais_bench[=DEVICE] (default: export, graphkit)",
    )
    b.add_argument("--batch", default=None)
    b.add_argument("--models", type=Path, default=None)
    b.add_argument("--weights", type=Path, default=None)
    b.add_argument("--loops", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("-o", "--out", type=Path, default=None, help="report folder (default <models>/bench)")

    pp = sub.add_parser("preprocess", parents=[common], help="write input batches as .bin + index.json")
    pp.add_argument("recipe", type=Path)
    pp.add_argument("--data", action="append", required=True, metavar="DIR[=LABEL]")
    pp.add_argument("--batch", type=int, required=True)
    pp.add_argument("--trials", type=Path, default=None)
    pp.add_argument("--limit", type=int, default=None)
    pp.add_argument("-o", "--out", type=Path, required=True)

    bi = sub.add_parser(
        "bisect", parents=[common], help="find the first pass, and site, that breaks the numbers"
    )
    bi.add_argument("recipe", type=Path)
    bi.add_argument("--batch", type=int, default=None, help="batch size (default: first that fails)")
    bi.add_argument("--weights", type=Path, default=None, help="checkpoint for a built-in model")
    bi.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR[=LABEL]",
        help="gate on the task's metric over this dataset instead of the parity tolerance",
    )
    bi.add_argument("--trials", type=Path, default=None)
    bi.add_argument("--limit", type=int, default=None, help="evaluate N evenly spaced utterances")
    bi.add_argument("--metric", default=None, help="metric to gate on (default: the task's main one)")
    bi.add_argument("--max-delta", type=float, default=0.0, help="allowed |Δ metric| (default 0)")
    bi.add_argument("--json", action="store_true")

    ps = sub.add_parser("passes", parents=[common], help="list the registered passes")
    ps.add_argument("--json", action="store_true")

    i = sub.add_parser(
        "inspect", parents=[common], help="inputs, outputs, opset, op histogram, 1-D conv count"
    )
    i.add_argument("model", type=Path)
    i.add_argument("--json", action="store_true")

    from graphkit import compare, lint

    lint.add_parser(sub, common)
    compare.add_parser(sub, common)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (staging folders, temporary
    files) runs before the process exits."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    root = logging.getLogger("graphkit")
    saved = (root.handlers[:], root.level, root.propagate)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:  # in-process callers (tests, notebooks) get their logging and SIGTERM back
        root.handlers[:], root.level, root.propagate = saved
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    verbose = False
    try:
        args = build_parser().parse_args(argv)
        verbose = args.verbose
        _setup_logging(args.verbose, args.quiet)
        _check_path_args(args)
        commands = {
            "apply": _apply,
            "eval": _eval,
            "bench": _bench,
            "preprocess": _preprocess,
            "bisect": _bisect,
            "passes": _passes,
            "inspect": _inspect,
        }
        func = getattr(args, "func", None) or commands[args.command]
        return func(args)
    except GraphkitError as exc:
        if verbose:
            logging.getLogger("graphkit").exception("traceback")
        from graphkit.recipe import one_line

        print(f"graphkit: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"graphkit: {what}; files are renamed into place only when a run completes", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


_POSITIONALS = ("recipe", "model", "a", "b")


def _check_path_args(args: argparse.Namespace) -> None:
    """Every path argument must at least be a name the OS can look up."""
    for dest, value in vars(args).items():
        if dest in _POSITIONALS and isinstance(value, list):
            # `compare a -- --`: Python 3.11's argparse leaves b as [], neither a path nor an error
            raise UsageError(f"graphkit: the following arguments are required: {dest}")
        if isinstance(value, Path):
            flag = dest if dest in _POSITIONALS else "--" + dest.replace("_", "-")
            check_path(value, flag)


def check_path(path: Path, flag: str) -> None:
    """UsageError where os functions would raise instead of answering (a NUL byte: ValueError;
    a name too long, a symlink loop, a folder that cannot be searched: OSError). A missing file
    passes: the command that reads the path says what it expected there."""
    text = str(path)
    shown = text if len(text) <= 120 else f"{text[:80]}...{text[-30:]} ({len(text)} characters)"
    if "\x00" in text:
        raise UsageError(f"{flag} {shown!r}: a path cannot contain a NUL byte")
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise UsageError(f"{flag} {shown}: {exc.strerror}") from None


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("graphkit: %(message)s"))
    root = logging.getLogger("graphkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _apply(args: argparse.Namespace) -> int:
    from graphkit.apply import apply_recipe
    from graphkit.recipe import load_recipe, parse_batch_list

    recipe = load_recipe(args.recipe)
    batches = parse_batch_list(args.batch) if args.batch else None
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"--weights: file not found: {args.weights}")
    out = args.out or Path("out") / recipe.name
    result = apply_recipe(
        recipe,
        out,
        batch_sizes=batches,
        weights=args.weights,
        parity=not args.no_parity,
        dump_passes=args.dump_passes,
        save_golden=args.save_golden,
        lint=not args.no_lint,
    )
    if args.json:
        print(json.dumps(result.manifest, indent=2))
    else:
        print(summary_table(result))
        print(f"\nwrote {len(result.files)} files to {result.out_dir}/ (run atc.sh on a CANN host)")
    return 0


def _bisect(args: argparse.Namespace) -> int:
    from graphkit.bisect import bisect_recipe, metric_gate_factory, render
    from graphkit.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.batch is not None and args.batch < 1:
        raise UsageError("--batch must be at least 1")
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"--weights: file not found: {args.weights}")
    factory = None
    if args.data:
        from graphkit.evaluate import load_eval_data

        if args.limit is not None and args.limit < 2:
            raise UsageError("--limit must be at least 2")
        data = load_eval_data(recipe, _data_args(args.data), trials=args.trials, limit=args.limit, workers=2)
        factory = metric_gate_factory(recipe, data, args.metric, args.max_delta)
    elif args.metric or args.trials or args.limit is not None:
        raise UsageError("--metric, --trials and --limit gate on a metric: give --data too")
    report = bisect_recipe(recipe, batch=args.batch, weights=args.weights, gate_factory=factory)
    print(json.dumps(report.as_dict(), indent=2) if args.json else render(report))
    return 0 if report.final_breach is None else 1


def _data_args(values: list[str]) -> list[tuple[Path, str | None]]:
    out = []
    for v in values:
        path, sep, label = v.partition("=")
        if sep and label not in ("bonafide", "spoof"):
            raise UsageError(f"--data {v}: the label after '=' is bonafide or spoof")
        check_path(Path(path), "--data")
        out.append((Path(path), label or None))
    return out


def _eval(args: argparse.Namespace) -> int:
    from graphkit.evaluate import evaluate, plot, render_table
    from graphkit.io import write_bytes
    from graphkit.recipe import load_recipe, parse_batch_list

    recipe = load_recipe(args.recipe)
    if args.limit is not None and args.limit < 2:
        raise UsageError("--limit must be at least 2")
    report = evaluate(
        recipe,
        _data_args(args.data),
        runners=args.runner,
        batch_sizes=parse_batch_list(args.batch) if args.batch else None,
        models_dir=args.models,
        weights=args.weights,
        trials=args.trials,
        asv_scores=args.asv_scores,
        limit=args.limit,
    )
    out = args.out or Path(report["models_dir"]) / "eval"
    plot(report, out / "eval.png")
    curves = report.pop("_curves")
    write_bytes(out / "eval.json", (json.dumps(report, indent=2) + "\n").encode())
    del curves
    print(render_table(report))
    print(f"\nwrote {out}/eval.json and {out}/eval.png")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from graphkit.bench import bench, plot, render_table
    from graphkit.io import write_bytes
    from graphkit.recipe import load_recipe, parse_batch_list

    recipe = load_recipe(args.recipe)
    report = bench(
        recipe,
        runners=args.runner or ["export", "graphkit"],
        batch_sizes=parse_batch_list(args.batch) if args.batch else None,
        models_dir=args.models,
        weights=args.weights,
        loops=args.loops,
        warmup=args.warmup,
    )
    out = args.out or (args.models or Path("out") / recipe.name) / "bench"
    write_bytes(out / "bench.json", (json.dumps(report, indent=2) + "\n").encode())
    plot(report, out / "bench.png")
    print(render_table(report))
    print(f"\nwrote {out}/bench.json and {out}/bench.png")
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    import numpy as np

    from graphkit.evaluate import load_eval_data
    from graphkit.preprocess import make_batches, write_batches
    from graphkit.recipe import load_recipe

    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    recipe = load_recipe(args.recipe)
    data = load_eval_data(recipe, _data_args(args.data), trials=args.trials, limit=args.limit, workers=2)
    task = recipe.task
    assert task is not None
    if len(recipe.inputs) != 1:
        raise UsageError("graphkit preprocess handles single-input models")
    batches = make_batches(data.n_rows, args.batch)

    def rows_for(items):
        return {task.input: np.stack([data.features(int(i)) for i in items])}

    meta = {
        "recipe": str(recipe.path),
        "recipe_sha256": recipe.sha256,
        "data": [str(d) for d in args.data],
        "utterances": data.utterance_ids,
        "crops": task.crops,
    }
    index = write_batches(args.out, batches, rows_for, recipe.inputs, meta)
    print(f"wrote {len(batches)} batches of {args.batch} to {args.out}/ ({index})")
    return 0


def summary_table(result) -> str:  # noqa: ANN001 - ApplyResult, imported lazily
    rows = [("batch", "pass", "sites", "nodes", "time", "worst parity")]
    for r in result.all_records():
        rows.append(
            (
                "all" if r.batch is None else str(r.batch),
                r.name,
                str(r.sites),
                f"{r.nodes_before}→{r.nodes_after}",
                f"{r.seconds:.2f}s",
                _worst(r.parity),
            )
        )
    for b in result.batches:
        rows.append((str(b.batch), "(final model)", "", "", "", _worst(b.parity)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _worst(parity: dict | None) -> str:
    if not parity:
        return "-"
    name, fig = max(parity.items(), key=lambda kv: kv[1]["max_abs"])
    cos = min(f["cosine"] for f in parity.values())
    return f"max|Δ| {fig['max_abs']:.2e} ({name}), min cos {cos:.7f}"


def _passes(args: argparse.Namespace) -> int:
    from graphkit.registry import PassRegistry

    specs = PassRegistry().specs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "contract": str(s.contract),
                        "doc": s.doc,
                        "params": [p.describe() for p in s.params.values()],
                    }
                    for s in specs
                ],
                indent=2,
            )
        )
        return 0
    for s in specs:
        params = ", ".join(p.describe() for p in s.params.values()) or "-"
        print(f"{s.name:18s} {str(s.contract):12s} {s.doc}")
        print(f"{'':18s} {'':12s} params: {params}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from graphkit.inspect_model import describe, render
    from graphkit.io import load_model

    info = describe(load_model(args.model))
    print(json.dumps(info, indent=2) if args.json else render(info))
    return 0
