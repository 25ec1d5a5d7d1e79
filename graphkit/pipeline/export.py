"""Export a PyTorch module to an ONNX model in memory.

Uses the legacy TorchScript exporter (``torch.onnx.export(dynamo=False)``): it traces the module
once with example inputs and emits the requested opset directly, the plain graphs that the Ascend
ModelZoo guides were written against. Ascend ATC accepts opsets 11–17 only.

torch is optional: this module imports without it and :func:`export_onnx` raises
:class:`~graphkit.errors.ModelError` with the install command when it is missing.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from graphkit._progress import Stopwatch
from graphkit._util import first_line
from graphkit.errors import ModelError, check_interrupted
from graphkit.ir.io import fds_to_debug_log
from graphkit.ir.proto import skeleton
from graphkit.models import TORCH_MISSING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("graphkit.pipeline.export")

MIN_OPSET, MAX_OPSET = 11, 17  # the ONNX opsets Ascend ATC accepts
_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXAMPLE_DIM = 2  # concrete size traced for every symbolic dim (not 1: 1 invites broadcasting)


def export_onnx(
    module: torch.nn.Module,
    *,
    inputs: Mapping[str, tuple[Sequence[int | str], str]],
    output_names: Sequence[str],
    opset: int = 17,
) -> onnx.ModelProto:
    """Export ``module`` (a ``torch.nn.Module``) and return the loaded ONNX model.

    ``inputs`` maps each input name, in the order of ``module.forward``'s arguments, to its
    shape and numpy dtype name, e.g. ``{"mel": (["B", 80, 200], "float32")}``. A string dim is
    symbolic: it becomes a dynamic axis of that name, and the trace uses size 2 for it. Example
    inputs are seeded (standard normal for floats, zeros otherwise), so exports are reproducible.
    ``output_names`` names the module's outputs in return order.

    ``opset`` must be 11–17, the range Ascend ATC accepts (default 17). The module is traced in
    eval mode; exporter warnings go to the ``graphkit.pipeline.export`` logger at debug level.
    Raises :class:`ModelError` when torch is missing, an argument is invalid or the export fails.
    """
    try:
        import torch
    except ImportError as exc:
        check_interrupted(exc)  # a Ctrl-C during the import, not a missing module
        raise ModelError(TORCH_MISSING) from exc
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(
            f"cannot export to ONNX opset {opset!r}: Ascend ATC accepts opsets {MIN_OPSET}–{MAX_OPSET}"
        )
    if not inputs or not output_names:
        raise ModelError("cannot export to ONNX: give at least one input and one output name")
    watch = Stopwatch()
    examples, dynamic_axes = _example_inputs(torch, inputs)
    buffer = io.BytesIO()
    log_was_on = torch._C._jit_is_onnx_log_enabled()
    with (
        warnings.catch_warnings(record=True) as caught,
        fds_to_debug_log(logger, "torch.onnx.export", fds=(1,)),
    ):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                module,
                tuple(examples),
                buffer,
                dynamo=False,
                input_names=list(inputs),
                output_names=list(output_names),
                opset_version=opset,
                dynamic_axes=dynamic_axes or None,
                do_constant_folding=True,
            )
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            # OnnxExporterError and UnsupportedOperatorError are RuntimeErrors; tracing errors
            # of the module itself surface as any of these.
            raise ModelError(f"torch.onnx.export failed at opset {opset}: {first_line(exc)}") from exc
        finally:
            # the exporter switches its C++ ONNX log on and leaves it on
            torch._C._jit_set_onnx_log_enabled(log_was_on)
    for warning in caught:
        logger.debug("torch.onnx.export: %s", first_line(warning.message))
    model = onnx.load_model_from_string(buffer.getvalue())
    produced = [o.name for o in model.graph.output]
    if produced != list(output_names):
        raise ModelError(
            f"the exported graph has outputs {produced}, but output_names are {list(output_names)}"
        )
    _name_output_dims(model, {dim for axes in dynamic_axes.values() for dim in axes.values()})
    logger.info("exported in %s (opset %d, %d nodes)", watch, opset, len(model.graph.node))
    return model


def _name_output_dims(model: onnx.ModelProto, names: set[str]) -> None:
    """Rename the exporter's output dims (``Divembedding_dim_0``) to the input dims they carry.

    ONNX shape inference propagates the input's dim names (``B``) through the graph; an output
    dim it does not resolve to one of ``names`` keeps the exporter's name.
    """
    outputs = model.graph.output
    dims = [d for o in outputs for d in o.type.tensor_type.shape.dim]
    if not names or all(d.HasField("dim_value") or d.dim_param in names for d in dims):
        return
    saved = []
    for output in outputs:
        saved.append(onnx.TypeProto.FromString(output.type.SerializeToString()))
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model)).graph.output
    except (onnx.shape_inference.InferenceError, ValueError) as exc:
        logger.debug("output dims keep the exporter's names: %s", first_line(exc))
        inferred = []
    for i, output in enumerate(outputs):
        output.type.CopyFrom(saved[i])
        if i >= len(inferred) or not inferred[i].type.tensor_type.HasField("shape"):
            continue
        got = inferred[i].type.tensor_type.shape.dim
        for dim, new in zip(output.type.tensor_type.shape.dim, got, strict=False):
            if dim.dim_param and new.dim_param in names:
                dim.dim_param = new.dim_param


def _example_inputs(
    torch: Any, inputs: Mapping[str, tuple[Sequence[int | str], str]]
) -> tuple[list[Any], dict[str, dict[int, str]]]:
    """Seeded example tensors and the dynamic axes of the symbolic dims."""
    generator = torch.Generator().manual_seed(0)
    examples, dynamic_axes = [], {}
    for name, (shape, dtype_name) in inputs.items():
        try:
            dtype = np.dtype(dtype_name)
        except TypeError as exc:
            raise ModelError(f"input {name!r}: unknown dtype {dtype_name!r}") from exc
        sizes = []
        for axis, dim in enumerate(shape):
            if isinstance(dim, str) and _DIM_NAME.match(dim):
                dynamic_axes.setdefault(name, {})[axis] = dim
                sizes.append(_EXAMPLE_DIM)
            elif isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
                sizes.append(dim)
            else:
                raise ModelError(f"input {name!r}: dim {axis} is {dim!r}; use a positive int or a name")
        if dtype.kind == "f":
            value = torch.randn(sizes, generator=generator, dtype=torch.float64)
            examples.append(torch.from_numpy(value.numpy().astype(dtype)))
        else:
            examples.append(torch.from_numpy(np.zeros(sizes, dtype=dtype)))
    return examples, dynamic_axes
