"""Exception hierarchy of reviewflow.

    ReviewflowError
    ├── SpecError            bad workflow definition (file, task, field named)
    ├── InvalidTransition    a state change the state machine forbids
    ├── StoreError           the database refused or lost something
    │   ├── RunNotFound
    │   ├── LeaseLost        another process now owns the run
    │   └── ApprovalDecided  an approval task already has a decision
    └── TaskError            raised by task types for one attempt
        ├── TaskFailed       the attempt failed (carries `retryable`)
        └── TaskTimeout      the attempt ran past its timeout

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
