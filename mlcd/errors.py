"""The errors mlcd reports to its users, each with its own exit code.

Every message names the problem and the fix; the CLI prints it on one line and exits with
``exit_code``. ``EXIT_CODES`` is the one list of the codes: the CLI's help is made from it, and
README.md and luigi.cfg's [retcode] mirror it.
"""

from __future__ import annotations

from typing import Any


class MlcdError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1
    kind = "error"
    # `mlcd run`'s summary, attached when the run got as far as Luigi: it is printed before the
    # error's line.
    report: Any = None


class ConfigError(MlcdError):
    """The pipeline configuration is wrong (unknown key, bad value, unimportable estimator...)."""

    exit_code = 2
    kind = "config error"


class UsageError(MlcdError):
    """A command-line argument is missing or wrong (no --reason, a port in use, ...)."""

    exit_code = 2
    kind = "usage error"


class GateFailed(MlcdError):
    """A blocking validation gate failed: nothing is published."""

    exit_code = 3
    kind = "gate failed"

    def __init__(self, stage: str, gates: list[str], verdict_path: str) -> None:
        self.stage = stage
        self.gates = gates
        self.verdict_path = verdict_path
        super().__init__(
            f"{stage}: blocking gate(s) failed: {', '.join(gates)}. Nothing was published; "
            f"see {verdict_path}. Fix the data or model, or change the gate in the config's "
            "'gates'/'validation' section."
        )


class DataError(MlcdError):
    """The source data cannot be used (missing file or column, empty, unreadable...)."""

    exit_code = 4
    kind = "data error"


class PipelineFailed(MlcdError):
    """A task failed for a reason that is not one of the above (see the task's log)."""

    exit_code = 5
    kind = "pipeline failed"


class TaskFailed(MlcdError):
    """A pipeline task failed: the kind and exit code of its error, as the task recorded them
    in whichever worker process it ran."""

    def __init__(self, kind: str, exit_code: int, message: str) -> None:
        self.kind = kind
        self.exit_code = exit_code
        super().__init__(message)


class AlreadyRunning(MlcdError):
    """Another run of the same pipeline holds the lock."""

    exit_code = 6
    kind = "already running"


class PromotionRefused(MlcdError):
    """A version whose gates did not pass was asked into production without ``--force``."""

    exit_code = 3
    kind = "gate failed"


class SchedulerUnreachable(MlcdError):
    """The central scheduler (luigid) named for the run does not answer."""

    exit_code = 10
    kind = "scheduler unreachable"


class StorageError(MlcdError):
    """A location cannot be read or written, or an artifact is corrupted."""

    exit_code = 7
    kind = "storage error"


class NotFound(MlcdError):
    """An unknown model or version was named (registry commands)."""

    exit_code = 8
    kind = "not found"


class NotReproduced(MlcdError):
    """``mlcd reproduce``: an output of the re-executed run differs from the recorded one."""

    exit_code = 9
    kind = "not reproduced"


class DriftDetected(MlcdError):
    """``mlcd monitor``: what production receives has drifted from what its model was trained
    on past the config's thresholds (monitor.thresholds)."""

    exit_code = 11
    kind = "drift detected"


class SourceNotReady(MlcdError):
    """The run date's source partition did not appear within ``source.wait``."""

    exit_code = 12
    kind = "source not ready"


EXIT_CODES: dict[str, int] = {
    "success": 0,
    "internal error": 1,
    ConfigError.kind: ConfigError.exit_code,
    GateFailed.kind: GateFailed.exit_code,
    DataError.kind: DataError.exit_code,
    PipelineFailed.kind: PipelineFailed.exit_code,
    AlreadyRunning.kind: AlreadyRunning.exit_code,
    StorageError.kind: StorageError.exit_code,
    NotFound.kind: NotFound.exit_code,
    NotReproduced.kind: NotReproduced.exit_code,
    SchedulerUnreachable.kind: SchedulerUnreachable.exit_code,
    DriftDetected.kind: DriftDetected.exit_code,
    SourceNotReady.kind: SourceNotReady.exit_code,
}


def exit_codes_text() -> str:
    """The exit codes in one sentence, for ``mlcd --help``."""
    return "Exit codes: " + ", ".join(f"{code} {kind}" for kind, code in EXIT_CODES.items()) + "."
