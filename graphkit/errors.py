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


class OutputError(GraphkitError):
    """A file graphkit must write cannot be written: the disk is full, the folder read-only or
    not writable, a name too long. The user's environment, not a bug: one line, exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (staging folders, temporary
    files) runs before the process exits."""


# The signal the CLI's handler turned into an interrupt, if any (signals are process-wide state).
_RAISED: list[int] = []


def note_interrupt(signum: int | None) -> None:
    """Record (the CLI's signal handler) or forget (None: the command is over) an interrupt."""
    _RAISED[:] = [] if signum is None else [signum]


def check_interrupted(cause: BaseException | None = None) -> None:
    """Raise the interrupt again where an ``except ImportError`` may have caught it: a Ctrl-C
    that lands while a native extension initialises (numpy, onnxruntime, torch) reaches Python
    as ``ImportError('import numpy failed')``, and treating that as "not installed" would carry
    on with the run, deaf to the Ctrl-C the user already gave."""
    if _RAISED:
        import signal

        raise (Terminated() if _RAISED[0] == signal.SIGTERM else KeyboardInterrupt()) from cause
