"""graphkit's built-in passes, one module each, and the pass contract they share.

:mod:`graphkit.passes._infra` defines the contract (:func:`register_pass`, :class:`Sites`,
:class:`PassResult`, the numeric contracts) and the :class:`PassRegistry` that finds passes:
these modules, the ``graphkit.passes`` entry-point group and ``module:function`` references.
"""

from graphkit.passes._infra import (
    APPROXIMATE,
    BUILTIN_MODULES,
    EXACT,
    Contract,
    Example,
    PassRegistry,
    PassResult,
    PassSpec,
    Sites,
    first_sites,
    fp_reorder,
    register_pass,
    spec_of,
)

__all__ = [
    "APPROXIMATE",
    "BUILTIN_MODULES",
    "EXACT",
    "Contract",
    "Example",
    "PassRegistry",
    "PassResult",
    "PassSpec",
    "Sites",
    "first_sites",
    "fp_reorder",
    "register_pass",
    "spec_of",
]
