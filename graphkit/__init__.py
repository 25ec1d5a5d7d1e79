"""graphkit: recipe-driven ONNX graph surgery with per-pass parity, for Ascend NPUs."""

from graphkit.errors import GraphkitError
from graphkit.registry import (
    APPROXIMATE,
    EXACT,
    Contract,
    PassResult,
    PassSpec,
    Sites,
    fp_reorder,
    register_pass,
)

__version__ = "0.1.0"

__all__ = [
    "APPROXIMATE",
    "EXACT",
    "Contract",
    "GraphkitError",
    "PassResult",
    "PassSpec",
    "Sites",
    "__version__",
    "fp_reorder",
    "register_pass",
]
