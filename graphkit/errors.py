"""The one error tree of graphkit.

Every error a user can cause (a bad recipe, a corrupt model, a missing data file, a pass that
changes the numbers) is a :class:`GraphkitError`. The CLI prints its message as one line and
exits with its ``exit_code``; anything else that escapes is a bug and keeps its traceback.

An error raised while a pass runs (by the pass, the pass manager or an instrument) also says
where, as fields: ``pass_name``, ``where`` (the recipe step, ``recipes/x.yaml: passes[2]``),
``recipe`` (the recipe file) and ``batch`` (None outside the per-batch stage), so that callers
(the node sweep, bisect) never parse the message.
"""

from __future__ import annotations

from pathlib import Path


class GraphkitError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 2

    def __init__(
        self,
        message: str = "",
        *,
        pass_name: str | None = None,
        where: str | None = None,
        recipe: Path | None = None,
        batch: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pass_name = pass_name
        self.where = where
        self.recipe = recipe
        self.batch = batch

    def at(
        self, message: str, *, pass_name: str, where: str, recipe: Path | None, batch: int | None
    ) -> GraphkitError:
        """An error of this one's type with ``message``, located at a pass (for re-raising)."""
        return type(self)(message, pass_name=pass_name, where=where, recipe=recipe, batch=batch)


class UsageError(GraphkitError):
    """Bad command-line usage (unknown flag value, impossible combination)."""


class RecipeError(GraphkitError):
    """A recipe that does not validate. The message names the file and the path inside it."""


class AtcConfigError(RecipeError):
    """ATC settings that break the rules of the Ascend toolchain."""


class ModelError(GraphkitError):
    """A model file that is missing, unreadable, not ONNX, or not what the recipe says."""


class DataError(GraphkitError):
    """A dataset or sample file that is missing or malformed."""


class PassError(GraphkitError):
    """A pass that cannot be found, was given bad parameters, or broke the graph."""


class InvalidRewrite(PassError):
    """A pass produced a model the ONNX checker rejects: a bug of the pass, not of the input."""


class ParityError(GraphkitError):
    """A pass changed the numbers beyond the recipe's tolerance."""

    exit_code = 1


class RunnerError(GraphkitError):
    """An inference backend failed."""


class RunnerUnavailable(RunnerError):
    """An inference backend is not installed or its hardware is absent."""


class ExpectationError(GraphkitError):
    """A recipe expectation (``expect``, ``expect_ops``) does not hold for the model."""

    exit_code = 1


class LintError(GraphkitError):
    """The model breaks a rule ATC enforces (graphkit lint found an error)."""

    exit_code = 1
