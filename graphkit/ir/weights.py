"""Weights shared by the models of one folder, as ONNX external data.

The per-batch models of an apply run hold the same weights: written self-contained, a folder
of six batch sizes holds six copies of them. Here each large float initializer is written once,
to a file under ``weights/`` named by the sha256 of its bytes, and every model that holds it
refers to that file (ONNX external data: ``location`` relative to the model's folder, no
``offset``). Small tensors and integer ones (shapes, axes, indices: what differs per batch)
stay inline.

Why a file per tensor rather than one file with offsets: ATC's ONNX parser turns an external
initializer into a FileConstant node, and the parser of older CANN releases multiplies the
``offset`` key by 4096 (Ascend/parser ``onnx_file_constant_parser.cc``, kOffsetCoefficient)
where current ones read it as bytes; a tensor at the start of its own file reads the same under
both. ATC resolves ``location`` against the model file's folder for the main graph's
initializers only and reads their values only when it builds the OM, so subgraph tensors stay
inline, and so do integer tensors, whose values ATC's shape inference may need at parse time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from google.protobuf.message import Message

from graphkit.ir.io import serialize_model, write_bytes

WEIGHTS_DIR = "weights"  # the folder beside the models, in every output folder that shares
MIN_BYTES = 4096  # smaller tensors stay inline: a file each would cost more than it saves
_FLOATS = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
)


class SharedWeights:
    """``shared.serialise(model)``: the bytes of ``model`` with its large float initializers in
    ``folder/weights/<sha256>.bin``, each file written once however many models hold it."""

    def __init__(self, folder: Path, *, min_bytes: int = MIN_BYTES) -> None:
        self.folder = Path(folder)
        self.min_bytes = min_bytes
        self.sizes: dict[str, int] = {}  # relative path (posix) of each weights file -> bytes
        self.digests: dict[str, str] = {}  # the same -> its sha256 (the manifest lists it)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    def serialise(self, model: onnx.ModelProto, what: str = "the model") -> bytes:
        """The model's bytes, its large weights referred to, not held (``model`` is unchanged)."""
        return serialize_model(self.externalise(model), what)

    def externalise(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of ``model`` whose large float initializers refer to their weights files."""
        out = onnx.ModelProto()
        _copy_fields(model, out, skip={"graph"})
        _copy_fields(model.graph, out.graph, skip={"initializer"})
        for tensor in model.graph.initializer:
            if self._shares(tensor):
                out.graph.initializer.append(self._reference(tensor))
            else:
                out.graph.initializer.append(tensor)
        return out

    def _shares(self, tensor: onnx.TensorProto) -> bool:
        return (
            tensor.data_type in _FLOATS
            and tensor.data_location != onnx.TensorProto.EXTERNAL
            and len(tensor.raw_data) >= self.min_bytes
        )

    def _reference(self, tensor: onnx.TensorProto) -> onnx.TensorProto:
        """The tensor without its bytes, naming the file that holds them (written if new)."""
        data = tensor.raw_data
        digest = hashlib.sha256(data).hexdigest()
        location = f"{WEIGHTS_DIR}/{digest[:32]}.bin"
        if location not in self.sizes:
            write_bytes(self.folder / location, data)
            self.sizes[location], self.digests[location] = len(data), digest
        ref = onnx.TensorProto()
        _copy_fields(tensor, ref, skip={"raw_data", "external_data", "data_location"})
        ref.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("length", str(len(data)))):
            entry = ref.external_data.add()
            entry.key, entry.value = key, value
        return ref


def _copy_fields(src: Message, dst: Message, *, skip: set[str]) -> None:
    """Copy every set field of ``src`` but ``skip`` into ``dst`` (a CopyFrom that leaves the
    large ones behind: copying a model's initializers only to drop them costs its size)."""
    for field, value in src.ListFields():
        if field.name in skip:
            continue
        # protobuf >= 5.28 says is_repeated; older releases only label (gone from upb's 7.x)
        if getattr(field, "is_repeated", None) or getattr(field, "label", None) == field.LABEL_REPEATED:
            getattr(dst, field.name).extend(value)
        elif field.message_type is not None:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def external_locations(model: onnx.ModelProto) -> list[str]:
    """The external data files the main graph's initializers name, in order, once each."""
    seen: dict[str, None] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    seen.setdefault(entry.value, None)
    return list(seen)
