"""graphkit's built-in passes, one module each (installed as ``graphkit.passes``)."""

BUILTIN_MODULES = [
    "graphkit.passes.cleanup",
    "graphkit.passes.conv1d_to_conv2d",
    "graphkit.passes.fold_constants",
    "graphkit.passes.remove_identity",
    "graphkit.passes.set_batch_size",
    "graphkit.passes.set_implmode",
    "graphkit.passes.simplify",
]
