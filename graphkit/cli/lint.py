"""``graphkit lint MODEL``: what ATC will reject or handle badly, before ATC runs."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from graphkit.ascend.flags import GEAR_FLAGS
from graphkit.errors import UsageError

HELP = "what ATC will reject or handle badly, before ATC runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", type=Path, help="the ONNX model to check")
    p.add_argument("--soc", default="Ascend310P3", help="ATC --soc_version (default: %(default)s)")
    p.add_argument(
        "--cann", default="8.0", help="CANN version: 8.0, 5.0.4, 8.0.RC2 ... (default: %(default)s)"
    )
    p.add_argument("--gear", choices=GEAR_FLAGS, help="the ATC dynamic-shape flag the build will use")
    p.add_argument(
        "--ignore", action="append", metavar="RULE", help="skip a rule (repeatable, or comma-separated)"
    )
    p.add_argument("--json", action="store_true", help="print the findings (or rules) as JSON")
    p.add_argument("--list-rules", action="store_true", help="list the rules and exit")


def run(args: argparse.Namespace) -> int:
    """Run ``graphkit lint``: 1 when any finding is an error, else 0."""
    from graphkit.ascend.lint import ERROR, RULES, lint_model, lint_report, render
    from graphkit.ir.io import load_model
    from graphkit.pipeline.provenance import environment, model_identity

    if args.list_rules:
        lines = [f"{r.id:22s} {r.severity:8s} {r.summary} [fix: {r.fix or '-'}]" for r in RULES.values()]
        print(json.dumps([asdict(r) for r in RULES.values()], indent=2) if args.json else "\n".join(lines))
        return 0
    if args.model is None:
        raise UsageError("lint: give a MODEL.onnx to check (or --list-rules)")
    ignore = [r.strip() for arg in args.ignore or () for r in arg.split(",") if r.strip()]
    findings = lint_model(load_model(args.model), soc=args.soc, cann=args.cann, gear=args.gear, ignore=ignore)
    if args.json:
        report = lint_report(findings, soc=args.soc, cann=args.cann, gear=args.gear, ignore=ignore)
        report = {"model": model_identity(args.model), **report, "environment": environment()}
        print(json.dumps(report, indent=2))
    else:
        print(render(findings))
    return int(any(f.severity == ERROR for f in findings))
