"""Strict loading of PyTorch weights into the built-in models (shared by ECAPA and AASIST).

A weights file is read with ``torch.load(weights_only=True)``: a bare state dict, or a training
checkpoint dict holding one under ``model_state_dict``; a DataParallel ``module.`` prefix is
stripped. Keys and shapes must match the model exactly. Every problem is one
:class:`~graphkit.errors.ModelError` line that names the file and the first offending keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from graphkit.errors import ModelError

# (keys whose shapes differ, the file's state dict) -> an extra hint for the message, or None
ShapeHint = Callable[[Sequence[str], Mapping[str, Tensor]], str | None]


def load_weights(
    model: nn.Module, weights: str | os.PathLike[str], label: str, *, hint: ShapeHint | None = None
) -> None:
    """Load ``weights`` into ``model`` strictly; ``label`` names the model in messages."""
    path = Path(weights)
    state = read_state_dict(path, label)
    check_state_dict(path, state, model.state_dict(), label, hint=hint)
    model.load_state_dict(state, strict=True)


def read_state_dict(path: Path, label: str) -> dict[str, Tensor]:
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise ModelError(f"{label} weights {path}: {what}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelError(f"cannot read {label} weights {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # unpickling arbitrary bytes fails in any way (KeyError, EOFError…)
        raise ModelError(
            f"{path} is not a PyTorch checkpoint loadable with weights_only=True ({_load_failure(exc)})"
        ) from exc
    state = obj.get("model_state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ModelError(
            f"{path} holds no state dict: expected a dict of tensors or a checkpoint dict "
            "with 'model_state_dict'"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_state_dict(
    path: Path,
    state: Mapping[str, Tensor],
    want: Mapping[str, Tensor],
    label: str,
    *,
    hint: ShapeHint | None = None,
) -> None:
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and state[k].shape != want[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if wrong:
        shapes = [f"{k} {tuple(state[k].shape)} != {tuple(want[k].shape)}" for k in wrong]
        problems.append(f"wrong shapes {_first(shapes)}")
        extra = hint(wrong, state) if hint is not None else None
        if extra:
            problems.append(extra)
    if problems:
        raise ModelError(f"{label} weights {path} do not match the model: {'; '.join(problems)}")


def _load_failure(exc: Exception) -> str:
    """The telling line of a torch.load failure, without its advice paragraphs or colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    # weights-only refusals put the reason last: "WeightsUnpickler error: Unsupported global: …"
    telling = [line for line in lines if "WeightsUnpickler error" in line]
    line = (telling or lines or [""])[0]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _first(keys: Sequence[str], n: int = 3) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
