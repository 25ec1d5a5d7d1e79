"""``graphkit passes``: the registered passes, their contracts and parameters."""

from __future__ import annotations

import argparse
import json

from graphkit.cli import _args

HELP = "list the registered passes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _args.add_json(p, "the passes (each parameter with its type, default and whether it is required)")


def run(args: argparse.Namespace) -> int:
    from graphkit.passes import PassRegistry

    specs = PassRegistry().specs()
    if args.json:
        print(json.dumps([s.describe() for s in specs], indent=2))
        return 0
    name_w = max((len(s.name) for s in specs), default=0)  # aligned however long a name is
    contract_w = max((len(str(s.contract)) for s in specs), default=0)
    for s in specs:
        params = ", ".join(p.describe() for p in s.params.values()) or "-"
        print(f"{s.name:{name_w}s}  {str(s.contract):{contract_w}s}  {s.doc}")
        print(f"{'':{name_w}s}  {'':{contract_w}s}  params: {params}")
    return 0
