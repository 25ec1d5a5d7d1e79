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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from graphkit._util import did_you_mean, first_line
from graphkit.errors import DataError, ModelError, RunnerUnavailable, UsageError
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
# onnxruntime (CPU, or CUDA/TensorRT, or emulating ATC's precision mode on CPU: graphkit.runners.
# emulate), an NPU through ais_bench, or the files an NPU host wrote.
EVAL_RUNNERS = ("torch", "export", "graphkit", "ort_cuda", "emulate", "ais_bench", "files")
BENCH_RUNNERS = ("export", "graphkit", "torch", "ort_cuda", "emulate", "ais_bench")
BATCH_FREE = ("torch", "export")  # any batch: run once, not once per batch size
# what tables call each kind (ort_cuda runs the same emitted models as graphkit, on the GPU:
# a label of its own, or its figures would pass for CPU ones)
LABELS = {
    "torch": "torch",
    "export": "export",
    "graphkit": "graphkit",
    "ort_cuda": "ort_cuda",
    "emulate": "emulated",  # the emitted models under ATC's precision mode, on CPU
    "ais_bench": "ais_bench",
    "files": "files",
}
_SHAPES_FROM = "the files runner reads output shapes from it"
_NEEDS_ARG = {"files": "DIR"}  # files=DIR; ais_bench takes an optional =DEVICE
# files=DIR,dtype=float16,fmt=npy: options of the files runner, after the folder
_FILES_OPTIONS = {"dtype": ("float16", "float32"), "fmt": ("auto", "msame_txt", "ais_bench_bin", "npy")}


@dataclass(frozen=True)
class RunnerChoice:
    """One ``--runner`` value: a kind and its argument (``files=DIR``: DIR; ``ais_bench=1``: 1)."""

    kind: str
    arg: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # files=DIR,dtype=float16: (("dtype", "float16"),)

    @property
    def per_batch(self) -> bool:
        """Whether it runs an emitted model of each batch size (else once, at any batch)."""
        return self.kind not in BATCH_FREE

    @property
    def label(self) -> str:
        if self.kind == "emulate":
            from graphkit.runners.emulate import label

            return label(self.arg)
        return LABELS[self.kind]

    def __str__(self) -> str:
        text = self.kind if self.arg is None else f"{self.kind}={self.arg}"
        return "".join([text, *(f",{k}={v}" for k, v in self.options)])


def parse_runner(text: str, allowed: Sequence[str] = EVAL_RUNNERS) -> RunnerChoice:
    """``torch`` | ``export`` | ``graphkit`` | ``ort_cuda`` | ``emulate[=MODE]`` |
    ``files=DIR[,dtype=float16][,fmt=F]`` | ``ais_bench[=DEVICE]``."""
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
    if kind == "emulate" and sep:
        from graphkit.runners.emulate import check_mode

        return RunnerChoice(kind, check_mode(arg, f"--runner {text}") if arg else None)
    if kind not in ("files", "ais_bench") and sep:
        raise UsageError(f"--runner {text}: '{kind}' takes no '=' argument")
    if kind == "files":
        arg, options = _files_options(text, arg)
        return RunnerChoice(kind, arg, options)
    return RunnerChoice(kind, arg or None)


def runner_labels(choices: Sequence[RunnerChoice]) -> list[str]:
    """What tables and reports call each choice: its label, unless another choice has the same
    one. Then a files= runner is called by its folder's name (``files:om_a``, ``files:om_b``;
    by more of the path where the names are the same too), another by its ``--runner`` text
    (``ort_cuda``), and a runner given twice by its place as well (``export #2``)."""
    labels = [c.label for c in choices]
    shared = {x for x in labels if labels.count(x) > 1}
    files = [i for i, c in enumerate(choices) if c.kind == "files" and labels[i] in shared]
    for i, tail in zip(files, _distinct_tails([str(choices[i].arg) for i in files])):
        labels[i] = f"files:{tail}"
    texts = [str(c) for c in choices]
    for i, c in enumerate(choices):  # ort_cuda beside graphkit; not "export" beside "export"
        if labels[i] in shared and c.kind != "files" and texts.count(texts[i]) == 1:
            labels[i] = texts[i]
    twice = {x for x in labels if labels.count(x) > 1}  # the same runner given twice
    places = [sum(y == x for y in labels[: i + 1]) for i, x in enumerate(labels)]
    return [f"{x} #{n}" if x in twice else x for x, n in zip(labels, places)]


def _distinct_tails(folders: Sequence[str]) -> list[str]:
    """For each folder the shortest end of its path that no other folder's path ends with
    (``a/out``, ``b/out``, ``om``); the whole path where none does (the same folder twice)."""
    parts = [Path(os.path.abspath(f)).parts for f in folders]

    def tail(p: tuple[str, ...], k: int) -> str:
        return Path(*p[-k:]).as_posix()

    out = []
    for i, p in enumerate(parts):
        others = [q for j, q in enumerate(parts) if j != i]
        k = next((k for k in range(1, len(p)) if all(tail(q, k) != tail(p, k) for q in others)), len(p))
        out.append(tail(p, k))
    return out


def _files_options(text: str, arg: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``DIR,key=value,…`` into DIR and the options; a folder whose own name holds a
    comma stays whole when it exists."""
    options: list[tuple[str, str]] = []
    while "," in arg and not Path(arg).is_dir():
        head, _, tail = arg.rpartition(",")
        key, eq, value = tail.partition("=")
        if not eq or not key.isidentifier():
            break
        if key not in _FILES_OPTIONS:
            raise UsageError(
                f"--runner {text}: unknown option '{key}' (options: {', '.join(_FILES_OPTIONS)})"
                f"{did_you_mean(key, list(_FILES_OPTIONS))}"
            )
        if value not in _FILES_OPTIONS[key]:
            raise UsageError(f"--runner {text}: {key} is one of {', '.join(_FILES_OPTIONS[key])}")
        if any(k == key for k, _ in options):
            raise UsageError(f"--runner {text}: {key} given twice")
        options.insert(0, (key, value))
        arg = head
    if not arg:
        raise UsageError(f"--runner {text}: name the folder holding the NPU host's output files")
    return arg, tuple(options)


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


def _check_cuda() -> None:
    """--runner ort_cuda where onnxruntime has no CUDA: said before any work, never run on CPU."""
    import onnxruntime as ort

    from graphkit.runners.onnxruntime import choose_providers

    try:
        choose_providers("cuda", ort.get_available_providers())
    except RunnerUnavailable as exc:
        raise RunnerUnavailable(f"--runner ort_cuda: {exc}, or use --runner graphkit for CPU") from None


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
                self._compiled_from(batch_sizes)
            elif choice.kind == "files":
                assert choice.arg is not None
                if not Path(choice.arg).is_dir():
                    raise DataError(f"{choice.arg}: output folder not found (--runner files=DIR)")
            elif choice.kind == "ort_cuda":
                _check_cuda()
            elif choice.kind == "emulate" and choice.arg is None:
                from graphkit.runners.emulate import recipe_mode

                recipe_mode(self.recipe.atc)  # a mode that is not emulated (bf16): said now
            if choice.kind in ("graphkit", "ort_cuda", "emulate", "files"):
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
            providers = "cuda" if choice.kind == "ort_cuda" else "cpu"
            return self._renamed(
                open_runner("onnxruntime", model=self._emitted(batch), providers=providers, label=label)
            )
        if choice.kind == "emulate":
            from graphkit.runners.emulate import open_emulated

            emitted = self._emitted(batch)
            return self._renamed(
                open_emulated(emitted, recipe.atc, choice.arg, label=label, base=recipe.base_dir)
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
            **dict(choice.options),
        )

    def _renamed(self, runner: Runner) -> Runner:
        """The emitted model's runner under the source's names (rename_io, bind_inputs)."""
        inputs, outputs, bound = self.recipe.io_names()
        if not (inputs or outputs or bound):
            return runner
        return Renamed(runner, inputs, outputs, set(bound))

    def _emitted(self, batch: int, why: str = "") -> Path:
        """The emitted model of ``batch``, once its folder's manifest vouches for it."""
        path = self.model_path(batch)
        if not path.is_file():
            because = f"{why}; " if why else ""
            raise UsageError(
                f"{path}: not found; {because}"
                f"run `graphkit apply {self.recipe.path} -o {self.models_dir}` first"
            )
        self._verify([path])
        return path

    def _verify(self, files: Sequence[Path]) -> dict[str, Any]:
        from graphkit.pipeline.verify import verify_outputs

        return verify_outputs(self.models_dir, self.recipe, weights=self.weights, files=files)

    def _compiled_from(self, batch_sizes: Sequence[int]) -> None:
        """The .om of each batch size is compiled from the .onnx the folder's manifest lists
        (an NPU host may not keep the .onnx: checked where it is there)."""
        present = [p for b in batch_sizes if (p := self.model_path(b)).is_file()]
        listed = self._verify(present).get("files", {})
        for b in batch_sizes:
            if self.model_path(b).name not in listed:
                extra = "" if b in self.recipe.batch_sizes else f" --batch {b}"
                raise UsageError(
                    f"{self.model_path(b, '.om')}: compiled from a model the last apply into "
                    f"{self.models_dir} did not write (batch {b}); run `graphkit apply "
                    f"{self.recipe.path} -o {self.models_dir}{extra}`, then its atc.sh"
                )

    def _output_row_shapes(self, batch: int) -> dict[str, list[int]]:
        """Output row shapes (without the batch) from the emitted model of that batch size."""
        path = self._emitted(batch, _SHAPES_FROM)
        try:
            model = onnx.load(str(path), load_external_data=False)
        except (OSError, DecodeError, RuntimeError, ValueError) as exc:  # unreadable, corrupt
            why = f"{type(exc).__name__}: {first_line(exc)}"
            raise ModelError(
                f"{path}: not a readable ONNX model ({why}); {_SHAPES_FROM}: run "
                f"`graphkit apply {self.recipe.path} -o {self.models_dir}` to write it again"
            ) from None
        return {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim][1:] for o in model.graph.output}
