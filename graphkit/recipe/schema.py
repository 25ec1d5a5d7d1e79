"""The recipe as typed values: what :func:`graphkit.recipe.load_recipe` returns.

Every value here has been validated; nothing downstream re-checks a recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.numerics import Tolerance
from graphkit.recipe.conditions import Condition

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32, 64)  # the ECAPA guide's table
DEFAULT_OPSET = 17  # highest opset ATC parses (ascend-toolchain.md §3.1: export at 11..17)
MAX_BATCH = 4096
MAX_DIM = 2**63 - 1  # ONNX dims are int64
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
SAMPLE_FEATURES = ("ecapa_logmel", "waveform_64600")
BATCH_PASS = "set_batch_size"  # passes from this one on run once per batch size


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    range: tuple[float, float] | None = None  # seeded inputs: uniform in range, else N(0,1)
    value: float | None = None  # the same value everywhere (a sample rate, a flag)
    npy: Path | None = None  # values from a file: rows along the batch axis, or the whole input
    feedback: str | None = None  # a state input: warmed up by feeding this output back

    @property
    def batch_axis(self) -> int | None:
        """The axis of the symbolic dim (the batch), or None: the input is the same at every
        batch size (a state of fixed shape, a scalar)."""
        symbolic = [i for i, d in enumerate(self.shape) if isinstance(d, str)]
        return symbolic[0] if symbolic else None

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True)
class SourceSpec:
    model: str | None = None
    onnx: Path | None = None
    weights: Path | None = None
    opset: int = DEFAULT_OPSET


@dataclass(frozen=True)
class PassStep:
    name: str
    params: Mapping[str, Any]
    where: str  # e.g. "recipes/ecapa.yaml: passes[2]"
    expect: Mapping[str, Condition] = field(default_factory=dict)  # {"sites": Condition}
    recipe: Path | None = None  # the recipe file the step comes from


@dataclass(frozen=True)
class SampleSpec:
    input: str
    features: str | None = None  # how to turn files into input rows (SAMPLE_FEATURES)
    audio: Path | None = None  # a folder (searched recursively) or one file
    npy: Path | None = None  # an array (N, *input shape without batch)
    count: int = 8
    required: bool = True


@dataclass(frozen=True)
class ParitySpec:
    seed: int = 0
    batch: int = 2
    tolerance: Tolerance = field(default_factory=Tolerance)
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)
    samples: tuple[SampleSpec, ...] = ()
    strict_approximate: bool = False

    def tolerance_for(self, output: str) -> Tolerance:
        return self.per_output.get(output, self.tolerance)


@dataclass(frozen=True)
class PrecisionSpec:
    """The recipe's ``precision:`` section: apply's check of the model under ATC's precision mode,
    emulated on CPU (:mod:`graphkit.ascend.precision`)."""

    emulate: bool = True  # record the emulated parity figures per batch in manifest.json
    max_delta: float | None = None  # fail apply when any output's emulated max |Δ| exceeds it


TASK_KINDS = ("speaker_verification", "anti_spoofing")


@dataclass(frozen=True)
class TaskSpec:
    """How `graphkit eval` turns a dataset into inputs and outputs into the task's metric."""

    kind: str  # TASK_KINDS
    input: str  # the input the features feed
    features: str  # SAMPLE_FEATURES
    output: str  # speaker verification: the embedding; anti-spoofing: the score output
    score_index: int | None = None  # anti-spoofing: the bona fide column of `output`
    crops: int = 1  # speaker verification: evenly spaced crops per utterance, embeddings averaged


@dataclass(frozen=True)
class Recipe:
    path: Path
    sha256: str
    name: str
    source: SourceSpec
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    passes: tuple[PassStep, ...]
    parity: ParitySpec
    atc: Any  # graphkit.ascend.settings.AtcSettings
    task: TaskSpec | None = None
    expect_ops: Mapping[str, Condition] = field(default_factory=dict)  # on every final model
    output_axes: Mapping[str, int | None] = field(default_factory=dict)  # declared; else inferred
    lint_ignore: tuple[str, ...] = ()  # graphkit.ascend.lint rule ids apply does not check
    precision: PrecisionSpec = field(default_factory=PrecisionSpec)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def batched(self) -> bool:
        """Whether any input has a batch dim (else the model has one size, batch 1)."""
        return any(i.batch_axis is not None for i in self.inputs)

    def io_names(self) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        """What the recipe's passes do to the model's interface: input renames, output renames
        (old → new, from ``rename_io`` steps, composed) and bound inputs (``bind_inputs``:
        source name → value)."""
        inputs: dict[str, str] = {}
        outputs: dict[str, str] = {}
        bound: dict[str, Any] = {}
        for step in self.passes:
            if step.name == "bind_inputs":
                back = {new: old for old, new in inputs.items()}
                for name, value in dict(step.params.get("values", {})).items():
                    bound[back.get(name, name)] = value
            elif step.name == "rename_io":
                for table, renames in (
                    (inputs, step.params.get("inputs", {})),
                    (outputs, step.params.get("outputs", {})),
                ):
                    back = {new: old for old, new in table.items()}
                    for old, new in dict(renames).items():
                        table[back.get(old, old)] = new
        return inputs, outputs, bound


# ---------------------------------------------------------------------------------------------
