"""Recipes: one YAML file per model, validated completely before any model is loaded.

A recipe names the source model, its inputs and outputs, the batch sizes to emit, the pass list
with parameters, the parity settings and the ATC settings. Every key is checked: unknown keys,
wrong types, unknown passes, bad parameter names and impossible values are :class:`RecipeError`
with the file, the path inside it (``passes[2].with.mode``) and the closest valid key.

- :mod:`~graphkit.recipe.schema`: the typed values a recipe becomes;
- :mod:`~graphkit.recipe.loader`: the bounded YAML loader;
- :mod:`~graphkit.recipe.validate`: the section-by-section validation;
- :mod:`~graphkit.recipe.catalog`: the passes, lint rules and models it validates against;
- :mod:`~graphkit.recipe.conditions`: ``expect`` / ``expect_ops`` conditions.

Schema (see ``recipes/ecapa.yaml`` for a full example)::

    name: ecapa_tdnn                      # file stem of the emitted models
    source:                               # exactly one of model / onnx
      model: ecapa_tdnn                   # a built-in PyTorch model (needs the torch extra)
      weights: path/to/checkpoint.pt      # optional; relative to the recipe; --weights overrides
      opset: 17                           # 11..17 (ATC's range)
      # onnx: path/to/model.onnx          # or an existing ONNX file
    inputs:
      mel: {shape: [B, 80, 200], dtype: float32, range: [-1.0, 1.0]}
    outputs: [embedding, attention]
    batch_sizes: [1, 4, 8, 16, 32, 64]
    passes:
      - conv1d_to_conv2d                  # a name, or
      - pass: simplify                    # a mapping with parameters
        with: {skip_fuse_bn: true}
        expect: {sites: ">= 1"}           # optional: fail when the pass rewrites fewer
      - pass: mypkg.passes:fuse_thing     # a third-party pass by module:function
    parity: {seed: 0, batch: 2, tolerance: {...}, samples: [...]}
    atc: {soc_version: Ascend310P3, cann_version: "8.0", ...}
    expect_ops: {Conv1d: 0, ScatterND: 0} # optional: op counts every final model must meet
    lint: {ignore: [pad-reflect]}         # optional: graphkit lint rules apply skips
    precision: {max_delta: 1.0e-3}        # optional: gate on the emulated om's figures (CPU emulation)
"""

from graphkit.recipe.catalog import Catalog, default_catalog
from graphkit.recipe.conditions import Condition, parse_condition
from graphkit.recipe.schema import (
    BATCH_PASS,
    DEFAULT_BATCH_SIZES,
    MAX_BATCH,
    InputSpec,
    ParitySpec,
    PassStep,
    PrecisionSpec,
    Recipe,
    SampleSpec,
    SourceSpec,
    TaskSpec,
)
from graphkit.recipe.validate import TOP_KEYS, load_recipe, parse_recipe

__all__ = [
    "BATCH_PASS",
    "DEFAULT_BATCH_SIZES",
    "MAX_BATCH",
    "TOP_KEYS",
    "Catalog",
    "Condition",
    "InputSpec",
    "ParitySpec",
    "PassStep",
    "PrecisionSpec",
    "Recipe",
    "SampleSpec",
    "SourceSpec",
    "TaskSpec",
    "default_catalog",
    "load_recipe",
    "parse_recipe",
    "parse_condition",
]
