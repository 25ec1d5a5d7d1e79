"""PyTorch runner: the recipe's own module, the reference every other backend is compared with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from graphkit.errors import RunnerError, RunnerUnavailable, check_interrupted
from graphkit.models import TORCH_INSTALL
from graphkit.runners.base import Runner

if TYPE_CHECKING:
    from graphkit.recipe import Recipe


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        raise RunnerUnavailable(f"torch runner: PyTorch is missing ({exc.name}): {TORCH_INSTALL}") from None
    return torch


def build_module(recipe: Recipe, weights: Path | None = None) -> Any:
    """The recipe's built-in PyTorch model, built exactly as :mod:`graphkit.pipeline.source` builds it."""
    from graphkit.pipeline.source import build_module as build

    _import_torch()  # RunnerUnavailable with the install line, before the recipe is looked at
    return build(recipe, weights)


class TorchRunner(Runner):
    """Run a ``torch.nn.Module`` in eval mode under ``torch.no_grad``.

    Give either ``module`` with ``input_names`` (positional order of ``forward``) and
    ``output_names`` (the order it returns them), or ``recipe`` (and optionally ``weights``): the
    recipe's built-in model, its inputs and outputs. ``batch`` is None: a module takes any batch.
    """

    kind: ClassVar[str] = "torch"
    batch: int | None = None

    def __init__(
        self,
        module: Any = None,
        *,
        recipe: Recipe | None = None,
        weights: Path | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        label: str | None = None,
    ) -> None:
        torch = _import_torch()
        if (module is None) == (recipe is None):
            raise RunnerError("the torch runner takes a module or a recipe, exactly one")
        if recipe is not None:
            from graphkit.models import BUILTIN_MODELS

            module = build_module(recipe, weights)
            info = BUILTIN_MODELS[recipe.source.model]  # type: ignore[index]
            input_names = input_names or [s.name for s in recipe.inputs]
            output_names = output_names or recipe.outputs or info.outputs
            label = label or f"torch {recipe.source.model}"
        if not isinstance(module, torch.nn.Module):
            raise RunnerError(f"the torch runner needs a torch.nn.Module, got {type(module).__name__}")
        if not input_names or not output_names:
            raise RunnerError("the torch runner needs input_names and output_names with a module")
        self._torch = torch
        self.module = module.eval()
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.label = label or "torch"

    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        with torch.no_grad():
            result = self.module(*args)
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(self.output_names):
            raise RunnerError(
                f"{self.label} [{key}]: the module returned {len(values)} outputs, "
                f"expected {len(self.output_names)} ({', '.join(self.output_names)})"
            )
        return {n: v.detach().cpu().numpy() for n, v in zip(self.output_names, values)}
