"""Request and response shapes of the HTTP API, and the error responses every route documents.

Responses are built by hand (plain dicts, the same documents the CLI prints with `--json`); the
models here describe them in the OpenAPI document, and the schemathesis test checks that what
the server sends conforms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engine import RUN_ID

RUN_ID_PATTERN = f"^{RUN_ID.pattern}$"
TASK_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
SHA_PATTERN = r"^[0-9a-fA-F]{40}$"


class ErrorBody(BaseModel):
    """Every error: what went wrong, and the request field at fault when there is one."""

    error: str
    field: str | None = None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    reason: str | None = None
    schema_version: int | None = None


class RunCreated(BaseModel):
    """Answer of POST /runs and of the GitHub webhook."""

    run_id: str
    workflow: str
    state: str
    created: bool


class Schedule(BaseModel):
    """A schedule as `reviewflow schedule list --json` shows it."""

    id: str
    workflow: str
    when: str
    cron: str | None
    interval: float | None
    timezone: str
    catchup: str
    jitter: float
    meta: dict[str, str]
    paused: bool
    next_slot: str
    last_slot: str | None
    last_run: str | None
    runs: int
    error: str | None = Field(
        description="Why the schedule's last slot could not fire (None: it fired)."
    )


class ScheduleList(BaseModel):
    schedules: list[Schedule]


class RunSummary(BaseModel):
    run_id: str
    workflow: str
    state: str
    meta: dict[str, str]
    created_at: float
    finished_at: float | None
    error: str | None


class RunPage(BaseModel):
    runs: list[RunSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )
    counts: dict[str, int] | None = Field(
        None, description="With `?counts=true`: matching runs by state (all pages)."
    )


class TaskStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    state: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    result: Any = None
    error: str | None
    errors: list[dict[str, Any]]
    waiting: str | None = None


class RunStatus(BaseModel):
    """The document `reviewflow status RUN_ID --json` prints."""

    run_id: str
    workflow: str
    state: str
    meta: dict[str, str]
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    owner: str | None
    tasks: list[TaskStatus]
    metrics: dict[str, Any]


class Event(BaseModel):
    """One state transition (the lines of `reviewflow events RUN_ID --json`)."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    run_id: str
    task: str | None
    from_: str | None = Field(alias="from")
    to: str
    attempt: int | None
    at: float
    detail: str | None


class ControlAccepted(BaseModel):
    """A cancel/pause/resume was carried out or handed to the process executing the run."""

    run_id: str
    action: Literal["cancel", "pause", "resume"]
    state: str
    how: Literal["here", "requested", "queued", "workers"] = Field(
        description="here: this server executes the run and acted on it; requested: left for "
        "the process executing it (picked up within about half a second); queued: no process "
        "executes it, a worker (or this server) will carry it out when it takes the run; "
        "workers: a run executed by `reviewflow worker`s, changed in the database at once "
        "(running attempts stop at their workers' next heartbeat)."
    )


class Decision(BaseModel):
    """Body of POST /runs/{id}/tasks/{task}/approve (optional) and …/reject (required)."""

    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(None, max_length=10_000)
    by: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Who decides (default: `api`); checked against the task's "
        "`params.approvers` when it names any.",
    )


class DecisionDone(BaseModel):
    run_id: str
    task: str
    decision: Literal["approved", "rejected"]
    by: str
    detail: str


class ReviewParams(BaseModel):
    """Parameters of a review run of a repository checkout (template runs and webhooks)."""

    model_config = ConfigDict(extra="forbid")

    repo_url: str = Field(
        max_length=2000, description="https clone URL of the repository with the change."
    )
    sha: str = Field(pattern=SHA_PATTERN, description="The commit to review (40 hex).")
    base: str = Field(pattern=SHA_PATTERN, description="The commit to compare with (40 hex).")
    base_url: str | None = Field(
        None,
        max_length=2000,
        description="https clone URL holding `base` (default: repo_url; a fork's PR has its "
        "base in the upstream repository).",
    )
    repo: str | None = Field(
        None,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/name, recorded as run metadata `repo` (default: from repo_url).",
    )
    pr: int | None = Field(None, ge=1, le=10**12, description="Recorded as metadata `pr`.")


class TemplateRun(BaseModel):
    """POST /runs JSON body naming a review template instead of giving a workflow."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        max_length=100, description="A shipped review template: pr, security or content."
    )
    params: ReviewParams


class WebhookAnswer(BaseModel):
    """202 of POST /webhooks/github: the review run, or why the event was ignored."""

    run_id: str | None = None
    created: bool | None = None
    ignored: str | None = None


ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def errors(*statuses: int, explicit: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the given error statuses (all JSON ErrorBody).

    `explicit` for routes whose success is not JSON: FastAPI would document a `model` with the
    route's media type, so the JSON content is spelled out (ErrorBody is in the components
    because the JSON routes use it as a model).
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if explicit:
            out[status] = {
                "description": ERROR_TEXT[status],
                "content": {"application/json": {"schema": ERROR_REF}},
            }
        else:
            out[status] = {"model": ErrorBody, "description": ERROR_TEXT[status]}
    return out


ERROR_TEXT = {
    400: "Malformed request (headers, encoding).",
    401: "No bearer token, or an unknown one (or a bad webhook signature).",
    403: "A read-only token on an operation that changes something, or an approver not allowed.",
    404: "No such run, task or log.",
    409: "The run or task is not in a state that allows this.",
    413: "The request body is larger than the server accepts.",
    415: "Unsupported Content-Type for the body.",
    422: "Invalid input: `field` names the parameter, header or body field at fault.",
    503: "The database is unreachable (or, for the webhook, no secret is configured).",
}

READ_ERRORS = (401, 413, 422, 503)
WRITE_ERRORS = (401, 403, 413, 422, 503)
