"""``graphkit passes``: the registered passes, their contracts and parameters."""

from __future__ import annotations

import argparse
import json

from graphkit.cli import _args

HELP = "list the registered passes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_json(p, "the passes")


def run(args: argparse.Namespace) -> int:
    from graphkit.passes import PassRegistry

    specs = PassRegistry().specs()
    if args.json:
        print(json.dumps([s.describe() for s in specs], indent=2))
        return 0
    for s in specs:
        params = ", ".join(p.describe() for p in s.params.values()) or "-"
        print(f"{s.name:18s} {str(s.contract):12s} {s.doc}")
        print(f"{'':18s} {'':12s} params: {params}")
    return 0
