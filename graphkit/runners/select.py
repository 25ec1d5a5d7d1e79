"""The one runner factory: ``--runner`` values, a backend by kind, a recipe's runners by batch size.

- :func:`parse_runner` reads what users write (``torch``, ``graphkit``, ``files=DIR``,
  ``ais_bench=0``) into a :class:`RunnerChoice`;
- :func:`open_runner` opens a backend by kind (``onnxruntime``, ``torch``, ``ais_bench``,
  ``files``) with that backend's options, checked against its constructor;
- :class:`RecipeRunners` opens the runner a choice means for one recipe, models folder and batch
  size, and :meth:`RecipeRunners.check` proves every choice can open *before* any feature is
  extracted or any reference is run (a missing models folder is said at once, not after minutes
  of PyTorch inference).

``graphkit eval``, ``graphkit bench`` and ``graphkit bisect`` open their runners here.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from graphkit._util import did_you_mean
from graphkit.errors import DataError, RunnerUnavailable, UsageError
from graphkit.models import TORCH_INSTALL
from graphkit.recipe import Recipe
from graphkit.runners.base import Renamed, Runner

# kind -> "module:class"; modules are imported on demand so that opening one backend never
# needs another's dependencies.
_BACKENDS: dict[str, str] = {
    "onnxruntime": "graphkit.runners.onnxruntime:OnnxruntimeRunner",
    "torch": "graphkit.runners.torch:TorchRunner",
    "ais_bench": "graphkit.runners.ais_bench:AisBenchRunner",
    "files": "graphkit.runners.files:FilesRunner",
}
RUNNER_KINDS: tuple[str, ...] = tuple(_BACKENDS)

# What --runner names: the reference (torch), the unmodified export, the emitted models on
# onnxruntime (CPU, or CUDA/TensorRT), an NPU through ais_bench, or the files an NPU host wrote.
EVAL_RUNNERS = ("torch", "export", "graphkit", "ort_cuda", "ais_bench", "files")
BENCH_RUNNERS = ("export", "graphkit", "torch", "ort_cuda", "ais_bench")
BATCH_FREE = ("torch", "export")  # any batch: run once, not once per batch size
# what tables call each kind (ort_cuda runs the same emitted models as graphkit)
LABELS = {
    "torch": "torch",
    "export": "plain export",
    "graphkit": "graphkit",
    "ort_cuda": "graphkit",
    "ais_bench": "ais_bench",
    "files": "files",
}
_SHAPES_FROM = "the files runner reads output shapes from it"
_NEEDS_ARG = {"files": "DIR"}  # files=DIR; ais_bench takes an optional =DEVICE


@dataclass(frozen=True)
class RunnerChoice:
    """One ``--runner`` value: a kind and its argument (``files=DIR``: DIR; ``ais_bench=1``: 1)."""

    kind: str
    arg: str | None = None

    @property
    def per_batch(self) -> bool:
        """Whether it runs an emitted model of each batch size (else once, at any batch)."""
        return self.kind not in BATCH_FREE

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}={self.arg}"


def parse_runner(text: str, allowed: Sequence[str] = EVAL_RUNNERS) -> RunnerChoice:
    """``torch`` | ``export`` | ``graphkit`` | ``ort_cuda`` | ``files=DIR`` | ``ais_bench[=DEVICE]``."""
    kind, sep, arg = text.partition("=")
    if kind not in allowed:
        raise UsageError(
            f"--runner: unknown runner '{kind}' (runners: {', '.join(allowed)}){did_you_mean(kind, allowed)}"
        )
    if kind in _NEEDS_ARG and not arg:
        raise UsageError(
            f"--runner {kind}={_NEEDS_ARG[kind]}: name the folder holding the NPU host's output files"
        )
    if kind == "ais_bench" and arg and not arg.isdigit():
        raise UsageError(f"--runner ais_bench={arg}: the device id is a number (npu-smi info lists them)")
    if kind not in ("files", "ais_bench") and sep:
        raise UsageError(f"--runner {text}: '{kind}' takes no '=' argument")
    return RunnerChoice(kind, arg or None)


def runner_class(kind: str) -> type[Runner]:
    if kind not in _BACKENDS:
        raise UsageError(
            f"unknown runner '{kind}' (runners: {', '.join(RUNNER_KINDS)}){did_you_mean(kind, RUNNER_KINDS)}"
        )
    module_name, _, attr = _BACKENDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def open_runner(kind: str, **options: Any) -> Runner:
    """Open a backend of ``kind`` (one of :data:`RUNNER_KINDS`) with that backend's options.

    Each backend's constructor documents its options; a misspelled option is a UsageError
    naming the backend's options, never silently ignored.
    """
    cls = runner_class(kind)
    sig = inspect.signature(cls)
    try:
        sig.bind(**options)
    except TypeError as exc:
        params = [p for p in sig.parameters if p != "self"]
        bad = [k for k in options if k not in params]
        hint = did_you_mean(bad[0], params) if bad else ""
        raise UsageError(f"runner '{kind}': {exc} (options: {', '.join(params)}){hint}") from None
    return cls(**options)


class RecipeRunners:
    """The runners of one recipe: its PyTorch module, its unmodified export, and the models
    ``graphkit apply`` wrote into ``models_dir`` (``<name>_bs<N>.onnx``, or ``.om`` on an NPU
    host). The module and the export are built once and shared by every runner that needs them.
    """

    def __init__(
        self, recipe: Recipe, *, models_dir: Path | None = None, weights: Path | None = None
    ) -> None:
        self.recipe = recipe
        self.models_dir = Path("out") / recipe.name if models_dir is None else Path(models_dir)
        self.weights = weights
        self._module: Any = None
        self._export: onnx.ModelProto | None = None

    def model_path(self, batch: int, suffix: str = ".onnx") -> Path:
        return self.models_dir / f"{self.recipe.name}_bs{batch}{suffix}"

    def check(self, choices: Sequence[RunnerChoice], batch_sizes: Sequence[int]) -> None:
        """Raise now what opening ``choices`` at ``batch_sizes`` would raise later."""
        for choice in choices:
            if choice.kind == "torch":
                if self.recipe.source.model is None:
                    raise UsageError(
                        f"--runner torch: {self.recipe.path} has an ONNX source; there is no PyTorch model"
                    )
                if importlib.util.find_spec("torch") is None:
                    raise RunnerUnavailable(f"torch runner: PyTorch is missing: {TORCH_INSTALL}")
            elif choice.kind == "ais_bench":
                from graphkit.runners.ais_bench import _import_interface, resolve_om

                _import_interface()
                for b in batch_sizes:
                    resolve_om(self.model_path(b, ""))
            elif choice.kind == "files":
                assert choice.arg is not None
                if not Path(choice.arg).is_dir():
                    raise DataError(f"{choice.arg}: output folder not found (--runner files=DIR)")
            if choice.kind in ("graphkit", "ort_cuda", "files"):
                for b in batch_sizes:
                    self._emitted(b, _SHAPES_FROM if choice.kind == "files" else "")

    def open(
        self,
        choice: RunnerChoice,
        batch: int | None = None,
        *,
        label: str,
        several: bool = False,
        input_names: Sequence[str] | None = None,
    ) -> Runner:
        """The runner ``choice`` means at ``batch`` (None for the batch-free ones). ``several``:
        eval runs several batch sizes, so ``files=DIR`` looks in ``DIR/bs<N>`` where it exists."""
        recipe = self.recipe
        inputs = list(input_names or [i.name for i in recipe.inputs])
        if choice.kind == "torch":
            if self._module is None:
                from graphkit.pipeline.source import build_module

                self._module = build_module(recipe, self.weights)
            outputs = list(recipe.outputs)
            return open_runner(
                "torch", module=self._module, input_names=inputs, output_names=outputs, label=label
            )
        if choice.kind == "export":
            if self._export is None:
                from graphkit.pipeline.source import load_source

                self._export = load_source(recipe, weights=self.weights).model
            return open_runner("onnxruntime", model=self._export, label=label)
        if batch is None:
            raise UsageError(f"runner '{choice}' runs the emitted model of one batch size; give the batch")
        if choice.kind in ("graphkit", "ort_cuda"):
            providers = "auto" if choice.kind == "ort_cuda" else "cpu"
            return self._renamed(
                open_runner("onnxruntime", model=self._emitted(batch), providers=providers, label=label)
            )
        if choice.kind == "ais_bench":
            device = int(choice.arg or 0)
            return self._renamed(
                open_runner(
                    "ais_bench", om=self.model_path(batch, ""), device_id=device, batch=batch, label=label
                )
            )
        assert choice.kind == "files" and choice.arg is not None
        directory = Path(choice.arg)
        if several and (directory / f"bs{batch}").is_dir():
            directory = directory / f"bs{batch}"
        return open_runner(
            "files",
            directory=directory,
            output_names=list(recipe.outputs),
            output_shapes=self._output_row_shapes(batch),
            batch=batch,
            label=label,
        )

    def _renamed(self, runner: Runner) -> Runner:
        """The emitted model's runner under the source's names (rename_io, bind_inputs)."""
        inputs, outputs, bound = self.recipe.io_names()
        if not (inputs or outputs or bound):
            return runner
        return Renamed(runner, inputs, outputs, set(bound))

    def _emitted(self, batch: int, why: str = "") -> Path:
        path = self.model_path(batch)
        if not path.is_file():
            because = f"{why}; " if why else ""
            raise UsageError(
                f"{path}: not found; {because}"
                f"run `graphkit apply {self.recipe.path} -o {self.models_dir}` first"
            )
        return path

    def _output_row_shapes(self, batch: int) -> dict[str, list[int]]:
        """Output row shapes (without the batch) from the emitted model of that batch size."""
        model = onnx.load(
            str(self._emitted(batch, _SHAPES_FROM)),
            load_external_data=False,
        )
        return {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim][1:] for o in model.graph.output}
