"""graphkit's built-in passes, one module each (installed as ``graphkit.passes``)."""

BUILTIN_MODULES = [
    "graphkit.passes.cleanup",
    "graphkit.passes.conv1d_to_conv2d",
    "graphkit.passes.fold_constants",
    "graphkit.passes.fold_transpose_softmax",
    "graphkit.passes.fold_uniform_attention",
    "graphkit.passes.remove_identity",
    "graphkit.passes.replace_gather_elements",
    "graphkit.passes.replace_scatternd_with_concat",
    "graphkit.passes.set_batch_size",
    "graphkit.passes.set_implmode",
    "graphkit.passes.simplify",
    "graphkit.passes.split_maxpool",
    "graphkit.passes.tile_conv_width",
]
