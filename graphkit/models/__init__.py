"""Built-in PyTorch model definitions (they need the ``torch`` extra).

Each entry names a builder ``module:function`` returning the module to export, with its input
and default output names. Builders are imported only when a recipe uses them, so graphkit
itself imports without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

TORCH_INSTALL = "pip install torch==2.13.0 && pip install 'graphkit[torch]'"
TORCH_MISSING = f"PyTorch is not installed; install the torch extra: {TORCH_INSTALL}"


@dataclass(frozen=True)
class ModelInfo:
    builder: str  # "module:function"(weights: path | None, *, seed: int) -> torch.nn.Module
    inputs: dict[str, tuple[tuple[int | str, ...], str]]  # name -> (shape, dtype)
    outputs: tuple[str, ...]  # default output names, in the module's return order
    summary: str


BUILTIN_MODELS: dict[str, ModelInfo] = {
    "ecapa_tdnn": ModelInfo(
        builder="graphkit.models.ecapa:build_ecapa",
        inputs={"mel": (("B", 80, 200), "float32")},
        outputs=("embedding", "attention"),
        summary="ECAPA-TDNN of the Ascend ModelZoo guide (Joovvhan variant)",
    ),
    "aasist_l": ModelInfo(
        builder="graphkit.models.aasist:build_aasist_l",
        inputs={"input": (("B", 64600), "float32")},
        outputs=("hidden", "logits"),
        summary="AASIST-L anti-spoofing (clovaai/aasist config AASIST-L)",
    ),
    "aasist": ModelInfo(
        builder="graphkit.models.aasist:build_aasist",
        inputs={"input": (("B", 64600), "float32")},
        outputs=("hidden", "logits"),
        summary="AASIST anti-spoofing (clovaai/aasist config AASIST)",
    ),
}
