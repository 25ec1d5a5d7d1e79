"""graphkit: recipe-driven ONNX graph surgery with per-pass parity, for Ascend NPUs.

The public API, by layer (each name is imported from its module on first use, so that
``import graphkit`` and ``graphkit --version`` stay fast):

- writing passes: :func:`register_pass`, the contracts :data:`EXACT`, :func:`fp_reorder` and
  :data:`APPROXIMATE`, :class:`PassResult`, :class:`Sites`;
- running recipes: :func:`load_recipe`, :func:`apply_recipe`, :class:`PassManager`,
  :class:`Instrument`;
- inference backends: :class:`Runner`;
- checks: :func:`lint_model`, :func:`compare_paths`;
- errors: :class:`GraphkitError` (every error a user can cause).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graphkit._version import __version__

_EXPORTS = {
    "APPROXIMATE": "graphkit.passes._infra",
    "EXACT": "graphkit.passes._infra",
    "Contract": "graphkit.passes._infra",
    "PassResult": "graphkit.passes._infra",
    "PassSpec": "graphkit.passes._infra",
    "Sites": "graphkit.passes._infra",
    "fp_reorder": "graphkit.passes._infra",
    "register_pass": "graphkit.passes._infra",
    "load_recipe": "graphkit.recipe",
    "apply_recipe": "graphkit.pipeline.apply",
    "PassManager": "graphkit.pipeline.manager",
    "Instrument": "graphkit.pipeline.instruments",
    "Runner": "graphkit.runners.base",
    "lint_model": "graphkit.ascend.lint",
    "compare_paths": "graphkit.debug.compare_run",
    "GraphkitError": "graphkit.errors",
}

__all__ = [
    "APPROXIMATE",
    "EXACT",
    "Contract",
    "GraphkitError",
    "Instrument",
    "PassManager",
    "PassResult",
    "PassSpec",
    "Runner",
    "Sites",
    "__version__",
    "apply_recipe",
    "compare_paths",
    "fp_reorder",
    "lint_model",
    "load_recipe",
    "register_pass",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graphkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from graphkit.ascend.lint import lint_model
    from graphkit.debug.compare_run import compare_paths
    from graphkit.errors import GraphkitError
    from graphkit.passes._infra import (
        APPROXIMATE,
        EXACT,
        Contract,
        PassResult,
        PassSpec,
        Sites,
        fp_reorder,
        register_pass,
    )
    from graphkit.pipeline.apply import apply_recipe
    from graphkit.pipeline.instruments import Instrument
    from graphkit.pipeline.manager import PassManager
    from graphkit.recipe import load_recipe
    from graphkit.runners.base import Runner
