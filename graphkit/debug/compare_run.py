"""Producing the values that :mod:`graphkit.debug.compare` compares.

``graphkit compare`` is two jobs: getting a reference and a candidate value for each tensor, and
judging them. This module does the first: it runs models under onnxruntime with every
intermediate tensor exposed as a graph output (seeded or golden inputs), loads golden files and
reads NPU output folders, and pairs the values up by name for each case of A vs B (model vs
model, model vs golden, golden vs NPU folder, golden vs golden); for model vs model it also reads
where each tensor sits in its graph (:mod:`graphkit.debug.compare_sites`), the evidence that
:func:`graphkit.debug.wiring.rewritten` weighs. The metrics, the report, its files and the CLI are
in :mod:`graphkit.debug.compare`, pure arithmetic that never imports this module; the I/O lives
here (a file in an apply output folder is first checked against its manifest.json).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from graphkit.debug.compare import CompareReport, Feed, Thresholds, compare_tensor
from graphkit.debug.compare_sites import tensor_sites
from graphkit.debug.wiring import Site, rewritten
from graphkit.errors import DataError, ModelError, UsageError
from graphkit.ir.proto import is_onnx_domain
from graphkit.pipeline.verify import verify_listed
from graphkit.recipe import MAX_BATCH

if TYPE_CHECKING:
    from graphkit.data.golden import Golden

log = logging.getLogger("graphkit.debug.compare")


def compare_paths(
    a: Path,
    b: Path,
    *,
    inputs: Path | None = None,
    batch: int | None = None,
    seed: int = 0,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen, so a shared default is safe
    outputs_only: bool = False,
) -> CompareReport:
    """Compare A (reference, unless B is a golden file) against B: picks the case from what A and
    B are (see :mod:`graphkit.debug.compare`) and runs it.

    ``inputs`` (a golden file) and ``batch``/``seed`` (seeded inputs, dim 0 = batch) apply
    to model vs model only; ``outputs_only`` compares the network outputs alone.
    """
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    if batch is not None and batch > MAX_BATCH:  # the recipes' limit; far beyond it numpy raises
        raise UsageError(f"--batch must be <= {MAX_BATCH}, got {batch}")
    if seed < 0:  # numpy's generators take non-negative seeds only
        raise UsageError(f"--seed must be >= 0, got {seed}")
    a, b = Path(a), Path(b)
    kinds = (_kind(a), _kind(b))
    verify_listed(a, b, inputs)  # a stale or edited model or golden file of an apply: refused
    report = _compare_case(a, b, kinds, inputs, batch, seed, thresholds, outputs_only)
    report.provenance = _provenance(a, b, kinds, inputs, batch, seed)
    return report


def _compare_case(
    a: Path,
    b: Path,
    kinds: tuple[str, str],
    inputs: Path | None,
    batch: int | None,
    seed: int,
    thresholds: Thresholds,
    outputs_only: bool,
) -> CompareReport:
    if "files" in kinds:
        if sorted(kinds) != ["files", "golden"]:
            raise UsageError(
                "a folder of NPU outputs compares only against a golden file (.npz), which supplies "
                "the output names, shapes and batch key"
            )
        _model_only(inputs, batch, "golden vs NPU outputs")
        golden, folder = (a, b) if kinds[0] == "golden" else (b, a)
        return _golden_vs_files(golden, folder, thresholds)
    if kinds == ("model", "model"):
        return _model_vs_model(a, b, inputs, batch, seed, thresholds, outputs_only)
    _model_only(inputs, batch, "a comparison with a golden file")
    if kinds == ("golden", "golden"):
        return _golden_vs_golden(a, b, thresholds)
    model, golden = (a, b) if kinds[0] == "model" else (b, a)
    return _model_vs_golden(model, golden, thresholds, outputs_only)


def _provenance(
    a: Path, b: Path, kinds: tuple[str, str], inputs: Path | None, batch: int | None, seed: int
) -> dict[str, Any]:
    """What compare.json records of the run: the environment, A's and B's identity, the inputs
    fed (a golden file's, or seeded ones; model vs model) and where the models ran (graphkit's
    own onnxruntime CPU sessions, :func:`graphkit.ir.ort.run_model`)."""
    from graphkit.ir.ort import CPU
    from graphkit.pipeline.provenance import environment, file_identity, path_identity

    data: dict[str, Any] | None = None
    if kinds == ("model", "model"):
        seeded = {"seeded_rows": {"seed": seed, "batch": batch}}
        data = file_identity(inputs) if inputs is not None else seeded
    return {
        "environment": environment(),
        "execution_provider": CPU if "model" in kinds else None,
        "files": {"a": path_identity(a), "b": path_identity(b)},
        "data": data,
    }


_TAKES = "compare takes models, golden .npz files and NPU output folders"


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        return "files"
    if suffix == ".npy":  # it would be read as a model ("not an ONNX model"): say what it is
        raise UsageError(f"{path}: a .npy array holds no tensor names ({_TAKES})")
    if not path.exists() and suffix not in (".npz", ".onnx"):  # those two get their loader's error
        raise UsageError(f"{path}: not found ({_TAKES})")
    return "golden" if suffix == ".npz" else "model"


def _model_only(inputs: Path | None, batch: int | None, what: str) -> None:
    if inputs is not None or batch is not None:
        raise UsageError(f"--inputs and --batch apply to model vs model, not to {what}")


@dataclass
class _Run:
    """One model's values: network outputs and exposed intermediates, in topological order."""

    values: dict[str, np.ndarray]
    order: list[str]
    op_types: dict[str, str]
    outputs: tuple[str, ...]
    untyped: int  # intermediates left out: neither shape inference nor onnxruntime typed them
    sites: dict[str, Site] = field(default_factory=dict)  # where each tensor sits (model vs model)


def _node_tensors(graph: onnx.GraphProto) -> tuple[list[str], dict[str, str]]:
    """The tensors the graph's nodes compute, in node (= topological) order, with their op.

    Graph inputs, initializers and Constant outputs are left out: they hold no computation.
    """
    skip = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    order: list[str] = []
    ops: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Constant" and is_onnx_domain(node.domain):
            continue
        for name in node.output:
            if name and name not in skip and name not in ops:
                ops[name] = node.op_type
                order.append(name)
    return order, ops


def _seeded_feed(model: onnx.ModelProto, batch: int | None, seed: int, label: str) -> Feed:
    """Seeded N(0, 1) inputs (graphkit.pipeline.reference) for the model's graph inputs; dim 0
    may be symbolic."""
    from graphkit.pipeline.reference import seeded_rows
    from graphkit.recipe import InputSpec

    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            raise UsageError(
                f"{label}: input '{vi.name}' has no tensor shape; feed a golden file with --inputs"
            )
        dims = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif axis == 0 and batch is not None:
                dims.append(batch)
            else:
                sym = d.dim_param or "?"
                hint = "give --batch N" if axis == 0 else "feed a golden file with --inputs"
                raise UsageError(
                    f"{label}: input '{vi.name}' has symbolic dim '{sym}' at axis {axis}: {hint}"
                )
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        specs.append(InputSpec(vi.name, tuple(dims), dtype.name))
    return seeded_rows(specs, 1, seed)  # rows is unused: every shape is concrete


def _feed_for(model: onnx.ModelProto, feed: Mapping[str, np.ndarray], label: str) -> Feed:
    """The feed's arrays for the model's inputs, cast to the dtypes it declares."""
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if vi.name not in feed:
            raise ModelError(f"{label}: input '{vi.name}' is not among the fed inputs ({', '.join(feed)})")
        value = np.asarray(feed[vi.name])
        if vi.type.HasField("tensor_type"):  # e.g. a float16 candidate fed the float32 golden inputs
            want = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
            value = value.astype(want, copy=False)
        out[vi.name] = value
    return out


def _run(
    path: Path,
    feed: Mapping[str, np.ndarray] | None,
    wanted: set[str] | None,
    *,
    batch: int | None = None,
    seed: int = 0,
    wiring: bool = False,
) -> tuple[_Run, Feed]:
    """Load the model, expose ``wanted`` intermediates (None: all), run it once; returns the
    values and the feed used (seeded from its inputs when ``feed`` is None), with the tensors'
    sites when ``wiring``.

    The loaded model is private to this call and edited in place (never copied), so a large
    model is held once as a proto and, while onnxruntime loads it, once as bytes.
    """
    from graphkit.ir.io import load_model
    from graphkit.ir.proto import infer_shapes

    label = str(path)
    model = load_model(path)
    order, ops = _node_tensors(model.graph)
    sites = tensor_sites(model.graph, order) if wiring else {}
    outputs = tuple(o.name for o in model.graph.output)
    feed = _seeded_feed(model, batch, seed, label) if feed is None else feed
    fed = _feed_for(model, feed, label)
    fetch, bare = list(outputs), []
    extra = [n for n in order if n not in outputs and (wanted is None or n in wanted)]
    if extra:
        infer_shapes(model)  # on a weight-free skeleton; fills value_info in place
        types = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.value_info}
        for name in extra:
            # elem type only: a wrong or partial inferred shape must not upset onnxruntime;
            # where inference found no type, a bare name lets onnxruntime type it itself
            if types.get(name):
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None))
            else:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                bare.append(name)
            fetch.append(name)
    try:
        values = _ort(model, fed, fetch, label)
    except ModelError:
        if not bare:
            raise
        # onnxruntime could not type one of them: drop every untyped output and count it
        log.debug("%s: retrying without %d untyped intermediate outputs", label, len(bare))
        keep = [o for o in model.graph.output if o.name not in set(bare)]
        del model.graph.output[:]
        model.graph.output.extend(keep)
        fetch = [n for n in fetch if n not in set(bare)]
        values = _ort(model, fed, fetch, label)
        log.info("%s: %d intermediate tensors have no type and are not compared", label, len(bare))
    else:
        bare = []
    del model
    untyped = len(bare)
    order += [o for o in outputs if o not in ops]
    return _Run(values, order, ops, outputs, untyped, sites), feed


def _ort(model: onnx.ModelProto, feed: Feed, fetch: list[str], label: str) -> dict[str, np.ndarray]:
    from graphkit.ir.ort import OrtFailure, run_model

    try:
        [values] = run_model(model.SerializeToString(), [feed], fetch)
    except OrtFailure as exc:
        raise ModelError(f"{label}: onnxruntime cannot run it: {exc}") from None
    return values


def _model_vs_model(
    a: Path, b: Path, inputs: Path | None, batch: int | None, seed: int, t: Thresholds, outputs_only: bool
) -> CompareReport:
    from graphkit.data.golden import load_golden

    feed = None
    source = f"seeded inputs (seed {seed}" + (f", batch {batch})" if batch else ")")
    if inputs is not None:
        golden = load_golden(inputs)
        if batch is not None and golden.batch is not None and batch != golden.batch:
            raise UsageError(f"--batch {batch} conflicts with {inputs}, whose batch is {golden.batch}")
        feed, source = golden.inputs, f"inputs of {inputs}"
    wiring = not outputs_only
    ra, feed = _run(a, feed, set() if outputs_only else None, batch=batch, seed=seed, wiring=wiring)
    wanted = set(ra.outputs if outputs_only else ra.values)
    rb, _ = _run(b, feed, wanted, batch=batch, seed=seed, wiring=wiring)
    if not set(ra.values) & set(rb.values):
        raise ModelError(
            f"{a} and {b} share no tensor name (outputs: {', '.join(ra.outputs)} vs {', '.join(rb.outputs)})"
        )
    rows, only = [], 0
    for name in ra.order:
        if name not in ra.values:
            continue
        is_out = name in ra.outputs
        if name not in rb.values and not is_out:
            only += 1  # renamed or removed by a rewrite: nothing to compare it with
            continue
        op = ra.op_types.get(name, "")
        moved = "" if is_out else rewritten(ra.sites.get(name), rb.sites.get(name))  # outputs: judged
        pair = (ra.values[name], rb.values.get(name))
        rows.append(compare_tensor(name, *pair, op_type=op, is_output=is_out, thresholds=t, wiring=moved))
    skipped = {"untyped": ra.untyped + rb.untyped, "not_in_candidate": only}
    return CompareReport(
        f"{a} (onnxruntime)", f"{b} (onnxruntime)", "model-model", t, rows, [f"fed {source}"], skipped
    )


def _model_vs_golden(model: Path, golden_path: Path, t: Thresholds, outputs_only: bool) -> CompareReport:
    from graphkit.data.golden import load_golden

    g = load_golden(golden_path)
    ref = {**g.outputs, **({} if outputs_only else g.tensors)}
    run, _ = _run(model, g.inputs, set(ref))
    if not set(g.outputs) & set(run.values):
        raise ModelError(
            f"{model}: none of the golden outputs ({', '.join(g.outputs)}) is a tensor of the model "
            f"(its outputs: {', '.join(run.outputs)})"
        )
    pos = {n: i for i, n in enumerate(run.order)}
    names = sorted(ref, key=lambda n: pos.get(n, len(pos)))  # topological where the model knows it
    rows = []
    for n in names:
        op = run.op_types.get(n, "")
        rows.append(
            compare_tensor(n, ref[n], run.values.get(n), op_type=op, is_output=n in g.outputs, thresholds=t)
        )
    label = f"{model} (onnxruntime)"
    return CompareReport(
        _golden_label(golden_path, g), label, "model-golden", t, rows, skipped={"untyped": run.untyped}
    )


def _golden_vs_files(golden_path: Path, folder: Path, t: Thresholds) -> CompareReport:
    from graphkit.data.golden import load_golden
    from graphkit.runners.files import FilesRunner

    g = load_golden(golden_path)
    batches = {v.shape[0] for v in g.outputs.values() if v.ndim}
    runner = FilesRunner(
        folder,
        output_names=list(g.outputs),
        output_shapes={n: v.shape[1:] for n, v in g.outputs.items()},
        batch=batches.pop() if len(batches) == 1 else None,  # tells an fp16 file by its size
        dtype={n: v.dtype.name for n, v in g.outputs.items()},
    )
    got = runner.infer(g.inputs, key=g.key)
    rows = []
    for name, ref in g.outputs.items():
        cand = got[name]
        if cand.size == ref.size:  # the files are flat; the golden knows the true shape
            cand = cand.reshape(ref.shape)
        rows.append(compare_tensor(name, ref, cand, is_output=True, thresholds=t))
    notes = [f"read {runner.fmt} files of batch key '{g.key}'"]
    if runner.fmt == "msame_txt":
        notes.append("TXT outputs carry only the precision msame printed")
    if runner.fp16_outputs:
        notes.append(f"float16 outputs, widened to float32: {', '.join(sorted(runner.fp16_outputs))}")
    return CompareReport(
        _golden_label(golden_path, g), f"{folder} (NPU outputs)", "golden-files", t, rows, notes
    )


def _golden_vs_golden(a: Path, b: Path, t: Thresholds) -> CompareReport:
    from graphkit.data.golden import load_golden

    ga, gb = load_golden(a), load_golden(b)
    ref, cand = {**ga.outputs, **ga.tensors}, {**gb.outputs, **gb.tensors}
    if not set(ga.outputs) & set(cand):
        raise DataError(f"{b}: none of the outputs of {a} ({', '.join(ga.outputs)}) is in it")
    notes = []
    same = ga.inputs.keys() == gb.inputs.keys() and all(
        np.array_equal(v, gb.inputs[k]) for k, v in ga.inputs.items()
    )
    if not same:
        notes.append("the two golden files hold different inputs: their outputs need not agree")
        log.warning("%s and %s hold different inputs", a, b)
    rows = [
        compare_tensor(n, v, cand.get(n), is_output=n in ga.outputs, thresholds=t) for n, v in ref.items()
    ]
    return CompareReport(_golden_label(a, ga), _golden_label(b, gb), "golden-golden", t, rows, notes)


def _golden_label(path: Path, g: Golden) -> str:
    m = g.meta
    made = f"recipe {m.get('recipe')}, seed {m.get('seed')}, batch {m.get('batch')}"
    return f"{path} (golden: {m.get('producer', '?')}; {made})"
