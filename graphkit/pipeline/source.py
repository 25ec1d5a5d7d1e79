"""The source model of a recipe: a built-in PyTorch model exported to ONNX, or an ONNX file."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from graphkit.errors import ModelError, RecipeError, check_interrupted
from graphkit.ir.io import read_model, sha256_bytes, sha256_file
from graphkit.ir.proto import input_dims, pin_input_dims
from graphkit.models import BUILTIN_MODELS, TORCH_INSTALL
from graphkit.recipe import InputSpec, Recipe

log = logging.getLogger("graphkit")


@dataclass
class Source:
    """``model`` is where the passes start; ``reference`` what parity compares with: the
    model as given (an ONNX source's inputs declare the recipe's dims in ``model`` only)."""

    model: onnx.ModelProto
    outputs: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)
    original: onnx.ModelProto | None = None

    @property
    def reference(self) -> onnx.ModelProto:
        return self.original if self.original is not None else self.model


def load_source(recipe: Recipe, *, weights: Path | None = None) -> Source:
    if recipe.source.onnx is not None:
        if weights is not None:
            raise RecipeError(f"{recipe.path}: --weights applies to a built-in model, not to an ONNX source")
        return _onnx_source(recipe)
    return _torch_source(recipe, weights or recipe.source.weights)


def _onnx_source(recipe: Recipe) -> Source:
    path = recipe.source.onnx
    assert path is not None
    loaded = read_model(path)  # external data is read from the model's folder, whatever the cwd
    model = loaded.model
    graph_inputs = input_dims(model)
    for spec in recipe.inputs:
        if spec.name not in graph_inputs:
            raise RecipeError(
                f"{recipe.path}: inputs.{spec.name}: the model has no input '{spec.name}' "
                f"(its inputs: {', '.join(graph_inputs)})"
            )
        _check_shape(recipe, spec, graph_inputs[spec.name])
    missing = [n for n in graph_inputs if n not in {s.name for s in recipe.inputs}]
    if missing:
        raise RecipeError(f"{recipe.path}: inputs: the model also needs {', '.join(missing)}")
    names = [o.name for o in model.graph.output]
    outputs = recipe.outputs or tuple(names)
    for name in outputs:
        if name not in names:
            raise RecipeError(
                f"{recipe.path}: outputs: the model has no output '{name}' (its outputs: {', '.join(names)})"
            )
    info: dict[str, Any] = {"kind": "onnx", "path": str(path), "sha256": sha256_file(path)}
    if loaded.external_files:  # the weights are part of what the manifest must identify
        info["external_data"] = {
            os.path.relpath(f, Path(path).parent): sha256_file(f) for f in loaded.external_files
        }
    pinned = pin_input_dims(model, {s.name: s.shape for s in recipe.inputs})
    if pinned is not model:
        log.info(
            "inputs declare the recipe's dims: %s",
            ", ".join(f"{s.name} {list(s.shape)}" for s in recipe.inputs),
        )
    return Source(pinned, tuple(outputs), info, original=model)


def _torch_source(recipe: Recipe, weights: Path | None) -> Source:
    from graphkit.pipeline.export import export_onnx

    assert recipe.source.model is not None
    info = BUILTIN_MODELS[recipe.source.model]
    expected = set(info.inputs)
    given = {s.name for s in recipe.inputs}
    if given != expected:
        raise RecipeError(
            f"{recipe.path}: inputs: model '{recipe.source.model}' takes {sorted(expected)}, "
            f"the recipe names {sorted(given)}"
        )
    for spec in recipe.inputs:
        _check_shape(recipe, spec, list(info.inputs[spec.name][0]))
    outputs = recipe.outputs or info.outputs
    if len(outputs) != len(info.outputs):
        raise RecipeError(
            f"{recipe.path}: outputs: model '{recipe.source.model}' has {len(info.outputs)} "
            f"outputs ({', '.join(info.outputs)}), the recipe names {len(outputs)}"
        )
    module = build_module(recipe, weights)
    log.info("exporting to ONNX (opset %d) ...", recipe.source.opset)
    model = export_onnx(
        module,
        inputs={s.name: (list(s.shape), s.dtype) for s in recipe.inputs},
        output_names=list(outputs),
        opset=recipe.source.opset,
    )
    meta = {
        "kind": "torch",
        "model": recipe.source.model,
        "weights": str(weights) if weights else None,
        "weights_sha256": sha256_file(weights) if weights else None,
        "opset": recipe.source.opset,
        "sha256": sha256_bytes(model.SerializeToString()),
    }
    return Source(model, tuple(outputs), meta)


def build_module(recipe: Recipe, weights: Path | None = None) -> Any:
    """The recipe's built-in PyTorch model (eval mode), with ``weights`` or the recipe's."""
    if recipe.source.model is None:
        raise RecipeError(f"{recipe.path}: the source is an ONNX file; there is no PyTorch model")
    weights = weights or recipe.source.weights
    if weights is not None and not Path(weights).is_file():
        raise ModelError(f"{weights}: weights file not found")
    info = BUILTIN_MODELS[recipe.source.model]
    module_name, _, attr = info.builder.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        raise ModelError(
            f"model '{recipe.source.model}' needs PyTorch ({exc.name} is missing): {TORCH_INSTALL}"
        ) from None
    log.info("building %s (%s)", recipe.source.model, weights or "seeded weights")
    return builder(weights, seed=recipe.parity.seed)


def _check_shape(recipe: Recipe, spec: InputSpec, model_dims: list[Any]) -> None:
    where = f"{recipe.path}: inputs.{spec.name}.shape"
    if len(model_dims) != len(spec.shape):
        raise RecipeError(f"{where}: rank {len(spec.shape)}, but the model input has rank {len(model_dims)}")
    for i, (mine, theirs) in enumerate(zip(spec.shape, model_dims)):
        if isinstance(mine, int) and isinstance(theirs, int) and theirs > 0 and mine != theirs:
            raise RecipeError(f"{where}[{i}]: {mine}, but the model has {theirs}")
        if isinstance(mine, str) and isinstance(theirs, int) and theirs > 0:
            raise RecipeError(
                f"{where}[{i}]: '{mine}' is symbolic, but the model fixes this dim to {theirs}: write "
                f"{theirs} (an input without a symbol has no batch dim), or export the model with "
                "a dynamic batch there"
            )
