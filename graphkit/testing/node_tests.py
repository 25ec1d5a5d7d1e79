"""The onnx package's backend node tests as sweep cases (:class:`~graphkit.testing.cases.Case`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit.ir.proto import graph_inputs
from graphkit.testing.cases import Case


def node_cases(modules: Sequence[str] | None = None) -> list[Case]:
    """The onnx package's backend node tests (``onnx.backend.test.loader``), in its order, each
    with its first data set. onnx >= 1.17 builds them in memory (its case generators warn
    about the overflows they test: silenced); older releases ship ``model.onnx`` and
    ``test_data_set_0/input_*.pb`` files.

    ``modules`` names modules of ``onnx.backend.test.case.node`` (``conv``, ``if_``) to build
    only their tests (at least those: the package keeps every test built so far in one list):
    a few seconds instead of the whole set's ten or more.
    """
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = _load_node_tests(modules)
    cases = []
    for t in tests:
        if t.model is not None:
            cases.append(Case(t.name, t.model.SerializeToString(), tuple(t.data_sets[0][0])))
        elif t.model_dir is not None:
            cases.append(_case_from_dir(t.name, Path(t.model_dir)))
    return cases


def _load_node_tests(modules: Sequence[str] | None) -> list[Any]:
    import importlib

    from onnx.backend.test.loader import load_model_tests

    package = importlib.import_module("onnx.backend.test.case.node")
    built = getattr(package, "_NodeTestCases", None)  # where the case generators put them
    if modules is None or built is None:
        return load_model_tests(kind="node")
    for name in modules:
        importlib.import_module(f"{package.__name__}.{name}")
    return list(built)


def _case_from_dir(name: str, folder: Path) -> Case:
    from onnx import numpy_helper

    data = (folder / "model.onnx").read_bytes()
    model = onnx.load_from_string(data)
    values = []
    for i, vi in enumerate(graph_inputs(model)):
        raw = (folder / "test_data_set_0" / f"input_{i}.pb").read_bytes()
        kind = vi.type.WhichOneof("value")
        if kind == "sequence_type":
            values.append(numpy_helper.to_list(_parse(onnx.SequenceProto(), raw)))
        elif kind == "optional_type":
            values.append(numpy_helper.to_optional(_parse(onnx.OptionalProto(), raw)))
        else:
            values.append(numpy_helper.to_array(_parse(onnx.TensorProto(), raw)))
    return Case(name, data, tuple(values))


def _parse(proto: Any, raw: bytes) -> Any:
    proto.ParseFromString(raw)
    return proto
