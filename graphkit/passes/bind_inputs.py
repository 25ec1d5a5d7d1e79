"""bind_inputs: replace graph inputs by constants, and fold what they decided.

Before: an input such as a sample rate ``sr`` (a scalar the application always sets to 16000)
that the graph branches on: ``If(Equal(sr, 16000))`` picks the 16 kHz weights.
After: ``sr`` is no longer an input; its readers (inside If/Loop bodies too) read a constant of
the input's dtype and shape; constant folding then inlines the Ifs it decides, so ATC sees one
branch. The numbers are those of the original model fed the bound values: parity feeds the
bound value to the reference (a recipe ``value`` that differs is refused).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.errors import PassError
from graphkit.ir.graph import fold_constants
from graphkit.passes._infra import EXACT, Example, register_pass

EXAMPLES = (
    Example(  # the 16 kHz branch is taken once sr is bound: the If folds away
        """g (float[1,4] x, int64 sr) => (float[1,4] y) {
            k = Constant<value = int64 {16000}>()
            is16 = Equal(sr, k)
            y = If(is16) <
                then_branch = t () => (float[1,4] a) { a = Relu(x) },
                else_branch = e () => (float[1,4] b) { b = Neg(x) }
            >
        }""",
        params={"values": {"sr": 16000}},
        inputs={"sr": np.array(16000, np.int64)},
    ),
)


@register_pass("bind_inputs", contract=EXACT)
def bind_inputs(graph: gs.Graph, *, values: dict[str, Any], fold: bool = True) -> int:
    """Replace the named inputs by constants of these values (a number fills the input's shape;
    a list must have it), then fold constants (``fold``) so the branches they decide go away.
    A name that is not an input (bound by an earlier run) is skipped."""
    by_name = {t.name: t for t in graph.inputs}
    bound = 0
    for name, value in values.items():
        tensor = by_name.get(name)
        if tensor is None:  # bound already (a recipe's names are checked against its inputs)
            continue
        array = _array(tensor, value)
        graph.inputs.remove(tensor)
        tensor.to_constant(array)
        bound += 1
    if bound and fold:
        fold_constants(graph).cleanup()
    return bound


def _array(tensor: gs.Variable, value: Any) -> np.ndarray:
    dtype = tensor.dtype
    if dtype is None:
        raise PassError(f"input '{tensor.name}' has no element type; cannot bind it")
    shape = tensor.shape
    if shape is None or any(not isinstance(d, int) or d < 0 for d in shape):
        raise PassError(f"input '{tensor.name}' has shape {shape}; only inputs of static shape can be bound")
    try:
        array = np.asarray(value).astype(np.dtype(dtype))
    except (TypeError, ValueError) as exc:
        raise PassError(
            f"input '{tensor.name}': {value!r} is not a {np.dtype(dtype).name} value ({exc})"
        ) from None
    if array.ndim == 0:
        return np.full(tuple(shape), array, dtype=array.dtype)
    if array.shape != tuple(shape):
        raise PassError(
            f"input '{tensor.name}' has shape {list(shape)}; the value has shape {list(array.shape)}"
        )
    return array
