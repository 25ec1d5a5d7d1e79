"""Inference backends.

Every backend is a :class:`Runner`: ``infer(feeds, key=...)`` runs one batch and returns
``{output name: array}``; ``device_times_ms()`` gives the backend's own timing where it has
one; runners are context managers. :mod:`graphkit.runners.select` opens them:

- ``onnxruntime``: an ONNX model on onnxruntime (CPU, or CUDA/TensorRT with ``providers="auto"``);
- ``torch``: the recipe's PyTorch module, the reference (needs the ``torch`` extra);
- ``ais_bench``: an ``.om`` model on an Ascend NPU through ais_bench's ``InferSession``
  (needs CANN and the aclruntime + ais_bench wheels; raises :class:`RunnerUnavailable` otherwise);
- ``files``: the outputs msame or ais_bench wrote on an NPU host, copied back here.

Backend modules import their heavy dependency only when a runner is opened.
"""

from graphkit.runners.base import Runner
from graphkit.runners.select import RUNNER_KINDS, RecipeRunners, RunnerChoice, open_runner, parse_runner

__all__ = ["RUNNER_KINDS", "RecipeRunners", "Runner", "RunnerChoice", "open_runner", "parse_runner"]
