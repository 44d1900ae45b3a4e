"""Exception hierarchy of reviewflow.

    ReviewflowError
    ├── SpecError            bad workflow definition (file, task, field named)
    ├── InvalidTransition    a state change the state machine forbids
    ├── StoreError           the database refused or lost something
    │   ├── RunNotFound
    │   ├── LeaseLost        another process now owns the run
    │   ├── ApprovalDecided  an approval task already has a decision
    │   └── RunBusy          another live process is executing the run
    ├── TaskError            raised by task types for one attempt
    │   ├── TaskFailed       the attempt failed (carries `retryable`)
    │   └── TaskTimeout      the attempt ran past its timeout
    ├── WorkerNameTaken      another live worker has this name
    ├── ChangeError          a review's change could not be collected (git)
    ├── CheckNotFound        no review check of that name (also a KeyError)
    ├── ToolMissing          a tool a check needs is not installed: the check is skipped
    ├── ServiceUnreachable   a service a check needs cannot be reached: skipped
    ├── GitHubError          GitHub could not be reached or refused
    │   └── GitHubHTTPError  ... with an error status
    ├── ReportError          a review's output cannot be published (also a ValueError)
    └── SendError            a notification could not be delivered (this time, or ever)

Every error reviewflow raises on purpose is defined here, whichever module raises it; the
modules that raise them re-export their own (`from reviewflow.engine import RunBusy` works).
Kept local on purpose: control flow that never leaves its module (cluster.dag.Conflict,
yamlsafe._Bound, server helpers' BadParam/NoReport, perf's BenchmarkFailed), HTTP answers
(server.http.ApiError, a FastAPI HTTPException) and notify.targets.FieldError (a ValueError for
pydantic's validators).

The CLI turns every ReviewflowError into a one-line message; nothing else is caught there, so an
unexpected exception still shows its traceback (that is a bug to fix, not to hide).
"""

from __future__ import annotations


class ReviewflowError(Exception):
    """Base class of every error reviewflow raises on purpose."""


class SpecError(ReviewflowError):
    """The workflow definition is invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.task = task
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.task:
            where.append(f"task {self.task!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def with_file(self, file: str) -> SpecError:
        """Return the same error, now naming the file it came from."""
        return SpecError(self.message, file=file, task=self.task, field=self.field)


class InvalidTransition(ReviewflowError):
    """A state machine refused a transition."""

    def __init__(self, kind: str, name: str, from_state: str, to_state: str) -> None:
        self.kind = kind
        self.name = name
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"invalid {kind} transition for {name!r}: {from_state} -> {to_state}")


class StoreError(ReviewflowError):
    """The store could not do what was asked."""


class RunNotFound(StoreError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class LeaseLost(StoreError):
    """Another process has taken over the run; this process must stop writing to it."""


class ApprovalDecided(StoreError):
    """The approval task already has a decision; a second one is refused."""


class TaskError(ReviewflowError):
    """An attempt of a task did not succeed."""


class TaskFailed(TaskError):
    """The attempt failed; `retryable` says whether the retry policy allows another try."""

    def __init__(self, message: str, *, retryable: bool = True, exit_code: int | None = None):
        self.retryable = retryable
        self.exit_code = exit_code
        super().__init__(message)


class TaskTimeout(TaskError):
    """The attempt ran past its timeout and was stopped."""


class RunBusy(StoreError):
    """Another live process is executing the run."""


class WorkerNameTaken(ReviewflowError):
    """Another live worker has this name (names tell workers apart in `reviewflow workers`)."""


class ChangeError(ReviewflowError):
    """The change could not be collected (not a git repository, unknown base, git failed)."""


class CheckNotFound(ReviewflowError, KeyError):
    """No check of that name (its message lists the known ones and broken plugins)."""


REVIEW_INSTALL_HINT = "pip install 'reviewflow[review]'"
"""How to get the tools of the review's checks (review.checks.base.INSTALL_HINT)."""


class ToolMissing(ReviewflowError):
    """A tool a check needs is not installed; the check is skipped with an install hint."""

    def __init__(
        self, tool: str, hint: str = REVIEW_INSTALL_HINT, *, message: str | None = None
    ) -> None:
        super().__init__(message or f"{tool} is not installed: {hint}")
        self.tool = tool
        self.hint = hint


class ServiceUnreachable(ReviewflowError):
    """A service a check needs (a vulnerability database) cannot be reached: skipped."""


class GitHubError(ReviewflowError):
    """GitHub could not be reached or refused a request; the message is one line for the user.

    `ambiguous` is set when a request that must not be blindly repeated (a POST, an append)
    failed in a way that may have taken effect (a gateway error, a timeout): the caller looks
    at what GitHub holds before trying again.
    """

    ambiguous: bool = False


class GitHubHTTPError(GitHubError):
    """GitHub answered with an error status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method, self.path, self.status, self.detail = method, path, status, message
        super().__init__(f"GitHub API {method} {path} answered {status}: {message}")


class ReportError(ReviewflowError, ValueError):
    """The review's output folder cannot be published (missing or malformed report.json)."""


class SendError(ReviewflowError):
    """A notification could not be delivered this time (or ever, if `permanent`)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
