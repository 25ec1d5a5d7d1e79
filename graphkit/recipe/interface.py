"""The model's interface in a recipe: ``inputs`` (shapes, batch axis, parity values) and
``outputs`` (names, declared batch axes), and the inputs that ``bind_inputs`` fixes."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from graphkit._util import did_you_mean, show
from graphkit.recipe.checker import Checker, join, kind
from graphkit.recipe.schema import DTYPES, MAX_DIM, InputSpec, PassStep


def parse_inputs(c: Checker, value: Any) -> tuple[InputSpec, ...]:
    """Inputs as the source model names them (a name ATC cannot express is renamed by the
    ``rename_io`` pass and checked when the ATC line is emitted). One symbolic dim, at any
    axis, is the batch; an input without one is the same at every batch size."""
    items = c.mapping(value, "inputs")
    if not items:
        raise c.fail("inputs", "at least one input is needed")
    out = []
    for name, spec in items.items():
        where = join("inputs", name)
        if not name.strip() or not name.isprintable():
            raise c.fail(where, "input names are non-empty and may not contain control characters")
        spec = c.mapping(
            spec, where, required=("shape",), allowed=("shape", "dtype", "range", "value", "npy", "feedback")
        )
        shape = _shape(c, spec["shape"], join(where, "shape"))
        dtype = c.choice(spec.get("dtype", "float32"), join(where, "dtype"), DTYPES)
        given_values = [k for k in ("range", "value", "npy", "feedback") if k in spec]
        if len(given_values) > 1:
            raise c.fail(
                where, f"give one of 'range', 'value', 'npy' or 'feedback', not {' and '.join(given_values)}"
            )
        rng = fixed = npy = feedback = None
        if "range" in spec:
            r = spec["range"]
            if not isinstance(r, list) or len(r) != 2:
                raise c.fail(join(where, "range"), "expected [low, high]")
            lo, hi = (c.number(x, f"{where}.range[{i}]") for i, x in enumerate(r))
            if not lo < hi:
                raise c.fail(join(where, "range"), f"low {lo} must be below high {hi}")
            _check_range(c, join(where, "range"), dtype, lo, hi)
            rng = (lo, hi)
        elif "value" in spec:
            fixed = _value(c, spec["value"], join(where, "value"), dtype)
        elif "npy" in spec:
            npy = c.file(spec["npy"], join(where, "npy"))
        elif "feedback" in spec:
            feedback = c.string(spec["feedback"], join(where, "feedback"))
        elif not dtype.startswith("float"):
            raise c.fail(where, f"an {dtype} input needs a 'range' or a 'value' for its parity values")
        out.append(InputSpec(name, tuple(shape), dtype, rng, fixed, npy, feedback))
    return tuple(out)


def _shape(c: Checker, value: Any, where: str) -> list[int | str]:
    if not isinstance(value, list):
        raise c.fail(where, f"expected a list (empty for a scalar), got {kind(value)}")
    shape: list[int | str] = []
    for i, d in enumerate(value):
        dw = f"{where}[{i}]"
        if isinstance(d, str):
            if not d.isidentifier():
                raise c.fail(dw, f"symbolic dim {show(d)} must be an identifier such as B")
            shape.append(d)
        else:
            shape.append(c.integer(d, dw, lo=1, hi=MAX_DIM))
    symbolic = [d for d in shape if isinstance(d, str)]
    if len(symbolic) > 1:
        raise c.fail(where, f"only the batch dim may be symbolic, found {symbolic} (ATC needs static shapes)")
    return shape


def _value(c: Checker, value: Any, where: str, dtype: str) -> float:
    number = c.number(value, where)
    if dtype == "bool":
        if number not in (0, 1):
            raise c.fail(where, f"{number} is not a bool value (0 or 1)")
    elif not dtype.startswith("float"):
        if number != int(number):
            raise c.fail(where, f"{number} is not an integer ({dtype} input)")
        _check_range(c, where, dtype, int(number), int(number) + 1)
    else:
        _check_range(c, where, dtype, number, number)
    return number


def _check_range(c: Checker, where: str, dtype: str, lo: float, hi: float) -> None:
    """Seeded values must fit the dtype: floats up to its largest finite value; integers are
    drawn from [int(low), int(high)), which must hold one value and fit the type (bool: 0, 1)."""
    if dtype.startswith("float"):
        top = float(np.finfo(dtype).max)
        if not (-top <= lo and hi <= top):
            raise c.fail(where, f"[{lo}, {hi}] exceeds the {dtype} range (±{top:g})")
        return
    bounds = (0, 1) if dtype == "bool" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    if not (bounds[0] <= lo and hi <= bounds[1] + 1):
        raise c.fail(where, f"[{lo}, {hi}] exceeds the {dtype} range [{bounds[0]}, {bounds[1] + 1})")
    if not int(lo) < int(hi):
        raise c.fail(
            where, f"[{lo}, {hi}) holds no {dtype} value (seeded integers lie in [int(low), int(high)))"
        )


def parse_outputs(c: Checker, value: Any) -> tuple[tuple[str, ...], dict[str, int | None]]:
    """Output names, and the batch axes declared for some (``{name: {batch_axis: 1}}``;
    ``null``: the output has none); the others are inferred from the model."""
    if not isinstance(value, list):
        raise c.fail("outputs", f"expected a list of output names, got {kind(value)}")
    names: list[str] = []
    axes: dict[str, int | None] = {}
    for i, item in enumerate(value):
        where = f"outputs[{i}]"
        if isinstance(item, dict):
            if len(item) != 1:
                raise c.fail(where, "expected a name or {name: {batch_axis: N}}")
            ((name, spec),) = item.items()
            name = c.string(name, where)
            spec = c.mapping(spec, join(where, name), required=("batch_axis",), allowed=("batch_axis",))
            axis = spec["batch_axis"]
            axes[name] = None if axis is None else c.integer(axis, f"{where}.{name}.batch_axis", lo=0, hi=64)
        else:
            name = c.string(item, where)
        names.append(name)
    if len(set(names)) != len(names):
        raise c.fail("outputs", "output names must be unique")
    return tuple(names), axes


def bind_values(
    c: Checker, inputs: tuple[InputSpec, ...], passes: tuple[PassStep, ...]
) -> tuple[InputSpec, ...]:
    """An input that ``bind_inputs`` replaces by a constant is fed that constant in parity
    (a different ``value`` would compare two different models)."""
    by_name = {i.name: i for i in inputs}
    out = dict(by_name)
    renamed = {
        new for st in passes if st.name == "rename_io" for new in dict(st.params.get("inputs", {})).values()
    }
    for step in passes:
        if step.name != "bind_inputs":
            continue
        for name, value in dict(step.params.get("values", {})).items():
            if name not in by_name and name in renamed:  # bound under its new name
                continue
            if name not in by_name:
                raise c.fail(
                    f"{step.where.split(': ', 1)[-1]}.with.values.{name}",
                    f"not an input of the recipe{did_you_mean(name, list(by_name))}",
                )
            spec = by_name[name]
            if spec.value is not None and spec.value != value:
                raise c.fail(
                    f"inputs.{name}.value",
                    f"{spec.value} differs from the {value} that {step.where.split(': ', 1)[-1]} binds it to",
                )
            if isinstance(value, int | float):  # bool is an int
                out[name] = dataclasses.replace(spec, value=float(value), range=None, npy=None, feedback=None)
    return tuple(out.values())
