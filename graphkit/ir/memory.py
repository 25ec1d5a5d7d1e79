"""How much memory running a model takes, and how much the machine has: checked before a run.

A run that cannot fit does not fail cleanly: the machine swaps, or the kernel's OOM killer ends
the process with no message (AASIST-L on onnxruntime holds ~190 MB per row, so batch 64 needs
12 GB). So the commands that pick a batch estimate one run first and refuse, in one line, a
run that would not fit.

:func:`run_bytes` is that estimate: shape inference at the batch asked for, then the nodes in
graph order, each output allocated when its node runs and freed after its last reader; the
peak of the live bytes, plus the weights and the graph's inputs. onnxruntime (no memory arena,
:mod:`graphkit.ir.ort`) frees a tensor the same way, so this lands near its peak: AASIST-L's
emitted models at batch 16 and 64, estimate 2.9 and 11.7 GB, measured 3.0 and 11.9 GB; the
ECAPA-TDNN export at 256, 2.0 against 2.5 GB (convolution workspaces are not counted). The
estimate errs low; :data:`USABLE` leaves the margin. :func:`available_bytes` is what the
machine and the process's cgroup leave free.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import onnx

from graphkit.errors import UsageError

log = logging.getLogger("graphkit")

# What a check leaves free for everything that is not the run (the interpreter, onnxruntime's
# own buffers, the reference outputs, the page cache): the run may take this share at most.
USABLE = 0.8


class MemoryLimitError(UsageError):
    """A run would need more memory than the machine has (exit 2: choose a smaller setting)."""


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def available_bytes() -> int:
    """Memory this process can still take: /proc/meminfo's MemAvailable (else the physical
    memory), capped by the cgroup's memory.max less its memory.current where one is set."""
    free = _meminfo("MemAvailable")
    if free is None:
        try:
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return 2**62  # nothing to go by: no limit
    cgroup = _cgroup_left()
    return min(free, cgroup) if cgroup is not None else free


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """memory.max less memory.current of this process's cgroup (v2), None where unlimited."""
    try:
        rel = next(
            line.partition("::")[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        folder = root / rel.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, StopIteration):
        return None


def check_fits(need: int, what: str, advice: str, *, available: int | None = None) -> None:
    """Refuse (:class:`MemoryLimitError`) when ``need`` bytes exceed :data:`USABLE` of the
    available memory. ``what`` names the run, ``advice`` says what to do instead."""
    have = available_bytes() if available is None else available
    if need > USABLE * have:
        raise MemoryLimitError(
            f"{what} needs about {gib(need)} of memory and {gib(have)} is available: {advice}"
        )
    log.debug("%s: about %s of %s available", what, gib(need), gib(have))


def run_bytes(model: onnx.ModelProto, batch: int | None = None, axes: Mapping[str, int] | None = None) -> int:
    """Estimated peak bytes of one onnxruntime run of ``model`` (see the module docstring).

    ``batch``: the batch to estimate at; a symbolic dim of an input at its batch axis (``axes``:
    input -> axis; default the first dim) is set to it, and a static model built at another
    batch is scaled (its activations are linear in the batch). Tensors whose shape inference
    leaves unknown are not counted, so the estimate errs low, never high."""
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    static = _static_batch(model, axes)
    sized = _with_batch(model, batch if static is None else None, axes)
    try:
        inferred = onnx.shape_inference.infer_shapes(sized, data_prop=True)
    except Exception as exc:  # onnx raises its own InferenceError, and ValueError on > 2 GB
        log.debug("memory estimate: shape inference failed (%s); counting inputs and weights", exc)
        inferred = sized
    sizes = {v.name: _value_bytes(v) for v in [*inferred.graph.value_info, *inferred.graph.output]}
    sizes |= {v.name: _value_bytes(v) for v in inferred.graph.input if v.name not in weights}
    fixed = sum(_stored_bytes(init) for init in graph.initializer)
    inputs = sum(sizes.get(v.name) or 0 for v in graph.input if v.name not in weights)
    peak = _live_peak(inferred.graph, sizes, weights)
    activations = max(peak, inputs)
    if static is not None and batch is not None and batch != static:
        activations = activations * batch // static
    return fixed + activations


def _live_peak(graph: onnx.GraphProto, sizes: Mapping[str, int | None], weights: set[str]) -> int:
    last_use: dict[str, int] = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = k
    keep = {o.name for o in graph.output} | {i.name for i in graph.input}  # the caller holds these
    live = sum(sizes.get(v.name) or 0 for v in graph.input if v.name not in weights)
    peak = live
    for k, node in enumerate(graph.node):
        live += sum(sizes.get(o) or 0 for o in node.output if o)
        peak = max(peak, live)
        for name in set(node.input):
            if name and last_use.get(name) == k and name not in keep and name not in weights:
                live -= sizes.get(name) or 0
        live -= sum(sizes.get(o) or 0 for o in node.output if o and o not in last_use and o not in keep)
    return peak


def _value_bytes(value: onnx.ValueInfoProto) -> int | None:
    t = value.type.tensor_type
    if not t.HasField("shape") or not t.elem_type:
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    if any(d < 0 for d in dims):
        return None
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
    except (KeyError, TypeError):
        return None
    return math.prod(dims) * itemsize


def _batch_dims(
    model: onnx.ModelProto, axes: Mapping[str, int] | None
) -> list[onnx.TensorShapeProto.Dimension]:
    weights = {i.name for i in model.graph.initializer}
    dims = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        shape = value.type.tensor_type.shape.dim
        axis = (axes or {}).get(value.name, 0)
        if axis is not None and axis < len(shape):
            dims.append(shape[axis])
    return dims


def _static_batch(model: onnx.ModelProto, axes: Mapping[str, int] | None) -> int | None:
    """The batch a static model was built at (its first input's batch dim), None if symbolic."""
    dims = _batch_dims(model, axes)
    if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return dims[0].dim_value
    return None


def _with_batch(model: onnx.ModelProto, batch: int | None, axes: Mapping[str, int] | None) -> onnx.ModelProto:
    """A copy without the weights' data (shape inference needs their shapes only; the small
    constants that data propagation folds, shape vectors, are kept) and with the batch dims set
    to ``batch``."""
    graph = model.graph
    skeleton = onnx.ModelProto(ir_version=model.ir_version)
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    g = skeleton.graph
    g.name = graph.name
    g.node.extend(graph.node)
    g.input.extend(graph.input)
    g.output.extend(graph.output)
    for init in graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL and init.ByteSize() <= 4096:
            g.initializer.append(init)
        else:  # a weight: its type and shape only
            g.initializer.append(onnx.TensorProto(name=init.name, data_type=init.data_type, dims=init.dims))
    if batch is not None:
        for dim in _batch_dims(skeleton, axes):
            if not dim.HasField("dim_value"):
                dim.dim_value = batch
    return skeleton


def _stored_bytes(init: onnx.TensorProto) -> int:
    """The bytes a weight takes in memory; one in an external data file holds only its name
    here, so its size comes from its dims (a model read with ``load_external_data=False``)."""
    if init.data_location != onnx.TensorProto.EXTERNAL:
        return init.ByteSize()
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    return math.prod(init.dims) * itemsize
