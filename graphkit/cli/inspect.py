"""``graphkit inspect MODEL``: what a model holds, in the terms that matter before ATC."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from graphkit.cli import _args

HELP = "inputs, outputs, opset, op histogram, 1-D conv count"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the ONNX model")
    _args.add_json(p, "the description")


def run(args: argparse.Namespace) -> int:
    from graphkit.ir.inspect import describe, render
    from graphkit.ir.io import load_model

    info = describe(load_model(args.model))
    print(json.dumps(info, indent=2) if args.json else render(info))
    return 0
