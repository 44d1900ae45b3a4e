"""Workflow specifications: the validated model every entry point (YAML, Python API) produces.

A spec is plain data — frozen pydantic models that reject unknown keys — so that it can be stored
with a run and rebuilt identically by `resume` in another process.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import SpecError
from .limits import LIMITS, check_data
from .notify.targets import FieldError, NotificationTarget

if TYPE_CHECKING:
    from typing import Protocol

    class TaskTypeCheck(Protocol):
        """What validation asks of the task types (executors.registry.TaskTypeRegistry)."""

        def validate_task(self, spec: TaskSpec) -> None: ...


PRIORITY_NAMES: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
"""Named priorities; any integer is accepted too (higher runs first)."""

MAX_DURATION = LIMITS.max_duration
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from `250ms`, `30s`, `5m`, `1h`, `1h30m` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: use e.g. 250ms, 30s, 5m, 1h")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError(f"bad duration {_short(value)}: too large") from None
    elif isinstance(value, str):
        seconds = _duration_text(value) if len(value) <= 32 else _duration_text.__wrapped__(value)
    else:
        raise ValueError(f"bad duration {_short(value)}: use e.g. 250ms, 30s, 5m, 1h")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError(f"bad duration {_short(value)}: must be a finite number >= 0")
    if seconds > MAX_DURATION:
        raise ValueError(f"bad duration {_short(value)}: more than 10 years")
    return seconds


@lru_cache(maxsize=1024)
def _duration_text(value: str) -> float:
    """Seconds of a duration's text (cached: a workflow repeats the same few, e.g. `30s`)."""
    text = value.strip().lower().replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.fullmatch(text):
        raise ValueError(f"bad duration {_short(value)}: use e.g. 250ms, 30s, 5m, 1h")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_priority(value: Any) -> int:
    """An integer priority from `high`/`medium`/`low` or an integer within ±LIMITS.max_priority
    (a priority is a float offset of the claim order: 10**400 has none)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        name = value.strip().lower()
        if name in PRIORITY_NAMES:
            return PRIORITY_NAMES[name]
        try:
            number = int(name)
        except ValueError:
            number = None
    if number is None:
        raise ValueError(f"bad priority {_short(value)}: use high, medium, low or an integer")
    if abs(number) > LIMITS.max_priority:
        raise ValueError(f"bad priority {_short(number)}: must be within ±{LIMITS.max_priority:,}")
    return number


def _short(value: Any, width: int = 40) -> str:
    """repr of a value, cut: an error message must stay one readable line."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**width else "a huge number"
    return text if len(text) <= width else text[: width - 1] + "…"


def _parse_argv(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split command {value!r}: {exc}") from None
    if isinstance(value, list):
        # YAML reads `run: [true]` or `run: [sleep, 1]` as a bool and an int: argv wants text.
        return [
            ("true" if v else "false")
            if isinstance(v, bool)
            else str(v)
            if isinstance(v, int | float)
            else v
            for v in value
        ]
    return value


def _parse_not_before(value: Any) -> Any:
    """An absolute time (ISO 8601 / datetime) or a duration counted from when the run starts.

    A time without a UTC offset is UTC: the same file means the same instant on every machine,
    and a naive year-1 date no longer fails when converted from local time.
    """
    if value is None:
        return value
    if isinstance(value, datetime):
        return _in_range(value)
    if isinstance(value, date):  # YAML reads `2026-12-01` as a date: midnight UTC
        return _in_range(datetime(value.year, value.month, value.day))
    if isinstance(value, str) and ("T" in value or "-" in value[1:]):
        try:
            return _in_range(datetime.fromisoformat(value))
        except ValueError as exc:
            if "out of range" in str(exc):
                raise
            raise ValueError(f"bad time {_short(value)}: use ISO 8601 or a duration") from None
    return parse_duration(value)


def _in_range(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    low, high = LIMITS.min_time, LIMITS.max_time
    try:
        ok = low <= when < high
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        ok = False
    if not ok:
        raise ValueError(
            f"time {when.isoformat()} out of range: from {low:%Y-%m-%d} to before "
            f"{high:%Y-%m-%d} (UTC)"
        )
    return when


def _env_names(env: dict[str, str]) -> dict[str, str]:
    """Names the environment can hold: execve splits `A=B=c` at the first `=`."""
    for name in env:
        if not name:
            raise ValueError("an environment variable name is empty")
        if "=" in name:
            raise ValueError(f"bad environment variable name {_short(name)}: no '=' in a name")
    return env


def _env_value(value: Any) -> Any:
    """YAML reads `DEBUG: true` or `PORT: 8080` as bool/int; the environment wants strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
Env = Annotated[dict[str, EnvValue], AfterValidator(_env_names)]
EnvPattern = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_*?\[\]!-]+$")]
"""A variable name, or an fnmatch pattern of names (`LC_*`)."""
Count = Annotated[int, Field(ge=1, le=LIMITS.max_count)]
ExitCode = Annotated[int, Field(ge=-LIMITS.max_exit_code, le=LIMITS.max_exit_code)]
Priority = Annotated[int, BeforeValidator(parse_priority)]
Argv = Annotated[list[str], BeforeValidator(_parse_argv)]
NotBefore = Annotated[datetime | float | None, BeforeValidator(_parse_not_before)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]

_MODEL = ConfigDict(extra="forbid", frozen=True)

DEFAULT_TIMEOUT = 60.0


class RetryPolicy(BaseModel):
    """How often and how late a failed attempt is tried again."""

    model_config = _MODEL

    max_retries: int = Field(3, ge=0, le=LIMITS.max_count)
    base_delay: Duration = 1.0
    multiplier: float = Field(2.0, ge=1.0, le=LIMITS.max_multiplier)
    max_delay: Duration = 300.0
    jitter: bool = True
    retry_on_exit_codes: list[ExitCode] | None = None
    retry_on: list[str] | None = None

    def delay(self, attempt: int, rand: float = 1.0) -> float:
        """Delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.

        Exponential, capped by max_delay; with jitter the delay is scaled by a factor in
        [0.5, 1.0] ("equal jitter"), so retries of many tasks spread out but never wait longer
        than the cap.
        """
        try:
            raw = self.base_delay * self.multiplier ** max(attempt - 1, 0)
        except OverflowError:
            raw = self.max_delay
        capped = min(raw, self.max_delay)
        return capped * (0.5 + 0.5 * rand) if self.jitter else capped


class TaskSpec(BaseModel):
    """One node of the DAG."""

    model_config = _MODEL

    name: Name
    type: str
    run: Argv | None = None
    call: str | None = None
    cwd: str | None = None
    env: Env = Field(default_factory=dict)
    inherit_env: Annotated[list[EnvPattern], Field(max_length=200)] | None = None
    """The variables of the executing process's environment a shell task sees (names or
    patterns such as `LC_*`); unset: all of them. For a task that runs code nobody reviewed
    (a pull request's tests), so the server's tokens and passwords stay out of its reach."""
    params: dict[str, Any] = Field(default_factory=dict)
    needs: list[str] = Field(default_factory=list)
    trigger: Literal["all_succeeded", "all_done"] = "all_succeeded"
    priority: Priority = PRIORITY_NAMES["medium"]
    timeout: Duration | None = DEFAULT_TIMEOUT
    """Seconds one attempt may take (None: no limit). An approval task's timeout bounds the
    wait for a person instead, and is unset (no limit) unless the task gives one."""
    on_timeout: Literal["reject", "approve", "escalate"] | None = None
    """What an approval task does when its timeout passes without a decision."""
    kill_grace: Duration = 5.0
    retry: RetryPolicy = RetryPolicy()
    concurrency_key: str | None = None
    concurrency_limit: Count | None = None
    delay: Duration = 0.0
    not_before: NotBefore = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data:
            if "run" in data:
                data = {**data, "type": "shell"}
            elif "call" in data:
                data = {**data, "type": "python"}
        if isinstance(data, dict) and data.get("type") == "approval" and "timeout" not in data:
            data = {**data, "timeout": None}
        return data

    @model_validator(mode="after")
    def _check_type(self, info: ValidationInfo) -> TaskSpec:
        if self.on_timeout is not None and self.type != "approval":
            raise SpecError(
                "only approval tasks have on_timeout", task=self.name, field="on_timeout"
            )
        task_types = (info.context or {}).get("task_types")
        if task_types is not None:  # given by validate_spec: a new spec, not a stored one
            task_types.validate_task(self)
        _share_common_parts(self)
        return self


_NO_ENV: dict[str, str] = {}
_NO_PARAMS: dict[str, Any] = {}
_NO_NEEDS: list[str] = []
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _share_common_parts(task: TaskSpec) -> None:
    """Let tasks share what most of them hold alike: empty env, params and needs, and the set
    of fields given (the same few names for every task of a generated workflow).

    A 1M-task run keeps its spec for the whole run: these were ~400 of the ~950 bytes of each
    task's model. The model is frozen and nothing mutates these containers (a task's lists and
    dicts are read-only by contract), so sharing one empty instance is safe.
    """
    fields = task.__dict__
    if not fields["env"]:
        fields["env"] = _NO_ENV
    if not fields["params"]:
        fields["params"] = _NO_PARAMS
    if not fields["needs"]:
        fields["needs"] = _NO_NEEDS
    given = task.__pydantic_fields_set__
    shared = _FIELDS_SETS.get(key := frozenset(given))
    if shared is None:
        if len(_FIELDS_SETS) >= 1024:  # bounded: a hostile spec cannot grow it
            return
        shared = _FIELDS_SETS[key] = given
    object.__setattr__(task, "__pydantic_fields_set__", shared)


class TaskDefaults(BaseModel):
    """Values every task inherits unless it sets its own (retry is merged key by key)."""

    model_config = _MODEL

    timeout: Duration = DEFAULT_TIMEOUT
    priority: Priority = PRIORITY_NAMES["medium"]
    retry: dict[str, Any] = Field(default_factory=dict)
    kill_grace: Duration = 5.0
    cwd: str | None = None
    env: Env = Field(default_factory=dict)


class ScheduleSpec(BaseModel):
    """One entry of `schedules:`: when runs of the workflow start by themselves (cadence.py)."""

    model_config = _MODEL

    name: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")] | None = (
        None
    )
    """The schedule's id (default: the workflow's name, `-2`, `-3`… for the next entries)."""
    cron: str | None = None
    interval: Duration | None = None
    timezone: str = "UTC"
    catchup: Literal["skip", "one", "all"] = "one"
    jitter: Duration = 0.0
    meta: dict[
        Annotated[str, Field(min_length=1, max_length=100)], Annotated[str, Field(max_length=1000)]
    ] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from .cadence import check_cron

        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from .cadence import zone

        zone(value)
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float | None) -> float | None:
        from .cadence import MIN_INTERVAL

        if value is not None and value < MIN_INTERVAL:
            raise ValueError(f"interval must be at least {MIN_INTERVAL:g} s")
        return value

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron and interval")
        if self.jitter < 0:
            raise ValueError("jitter must not be negative")
        if self.interval is not None and self.jitter >= self.interval:
            # each slot would wait past the next ones: catchup would fire a later slot instead
            raise ValueError("jitter: must be shorter than the interval")
        return self

    def cadence(self) -> Any:
        from .cadence import Cadence

        return Cadence(self.cron, self.interval, self.timezone)


class WorkflowSpec(BaseModel):
    """A validated workflow: a named DAG of tasks plus run-wide policies."""

    model_config = _MODEL

    name: Name
    description: str | None = None
    notifications: list[NotificationTarget] = Field(default_factory=list)
    """Who hears about the run (reviewflow.notify.targets). Kept right after the two string
    fields: the store finds it in the stored JSON without parsing the tasks (store/outbox.py)."""
    max_concurrency: Count | None = None
    timeout: Duration | None = None
    failure_policy: Literal["fail_fast", "continue"] = "fail_fast"
    concurrency_limits: dict[str, Count] = Field(default_factory=dict)
    not_before: NotBefore = None
    defaults: TaskDefaults = TaskDefaults()
    plugins: list[str] = Field(default_factory=list)
    """Folders of plugin modules providing task types (paths relative to the workflow file)."""
    tasks: dict[str, TaskSpec]
    on_failure: dict[str, TaskSpec] = Field(default_factory=dict)
    schedules: list[ScheduleSpec] = Field(default_factory=list, max_length=100)
    """When runs start by themselves, once registered (`reviewflow schedule add FILE`)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        # JSON text is a spec read back from a store (`model_validate_json`: the engine, the
        # workers, the server's views), checked when it was submitted; walking it again cost
        # 0.8 s of CPU for 20,000 tasks each time a run started.
        if info.mode != "json" and not (info.context or {}).get("data_checked"):
            check_data(data)
        raw_defaults = data.get("defaults") or {}
        if not isinstance(raw_defaults, dict):
            return data  # the field validator reports the type error
        data = dict(data)
        for section in ("tasks", "on_failure"):
            tasks = data.get(section)
            if isinstance(tasks, dict):
                data[section] = {
                    name: with_defaults(name, body, raw_defaults) for name, body in tasks.items()
                }
        return data

    @model_validator(mode="after")
    def _check_graph(self, info: ValidationInfo) -> WorkflowSpec:
        if not self.tasks:
            raise SpecError("a workflow needs at least one task", field="tasks")
        clash = sorted(set(self.tasks) & set(self.on_failure))
        if clash:
            raise SpecError("name used in both tasks and on_failure", task=clash[0])
        if not (info.context or {}).get("graph_checked"):  # done on the raw data already
            _check_needs({n: t.needs for n, t in self.tasks.items()}, "tasks")
            _check_needs({n: t.needs for n, t in self.on_failure.items()}, "on_failure")
        limits = dict(self.concurrency_limits)
        for task in [*self.tasks.values(), *self.on_failure.values()]:
            if task.concurrency_limit is None:
                continue
            if task.concurrency_key is None:
                raise SpecError(
                    "concurrency_limit needs a concurrency_key",
                    task=task.name,
                    field="concurrency_limit",
                )
            known = limits.setdefault(task.concurrency_key, task.concurrency_limit)
            if known != task.concurrency_limit:
                raise SpecError(
                    f"key {task.concurrency_key!r} has two limits: {known} and "
                    f"{task.concurrency_limit}",
                    task=task.name,
                    field="concurrency_limit",
                )
        return self

    def key_limits(self) -> dict[str, int]:
        """Concurrency limit of each key named by this workflow."""
        limits = dict(self.concurrency_limits)
        for task in [*self.tasks.values(), *self.on_failure.values()]:
            if task.concurrency_key and task.concurrency_limit:
                limits.setdefault(task.concurrency_key, task.concurrency_limit)
        return limits

    def stored_json(self) -> str:
        """The JSON a store keeps of this spec: read back (`model_validate_json`), it gives
        this spec again.

        The workflow's own fields are written in full (`notifications` third: the outbox
        finds it in the text without parsing the tasks), its tasks with only the fields that
        differ from their defaults: ~60 instead of ~440 bytes a task, which a 1M-task run's
        submit held several times over (pydantic's buffer, the string, SQLite's copy). The
        raw readers (dashboard, metrics, approvals) read task fields with the same defaults.
        A task field left out reads back as the `defaults:` section's value, so a spec whose
        defaults differ from the built-in ones (or with an approval task whose timeout is the
        compute default, which reads back as "no timeout") is written in full, as before.
        """
        if self.defaults != _NO_DEFAULTS or any(
            t.type == "approval" and t.timeout == DEFAULT_TIMEOUT
            for t in [*self.tasks.values(), *self.on_failure.values()]
        ):
            return self.model_dump_json()
        head = self.model_dump_json(exclude={"tasks", "on_failure"})
        tasks = _TASKS.dump_json(self.tasks, exclude_defaults=True).decode()
        hooks = _TASKS.dump_json(self.on_failure, exclude_defaults=True).decode()
        return f'{head[:-1]},"tasks":{tasks},"on_failure":{hooks}}}'

    def stored_as(self, text: str) -> bool:
        """Whether `text` is this spec as a store keeps it, in this version's format or the
        full one earlier versions (and the workers' submit) wrote: an idempotency key reused
        for the same workflow is the same request."""
        return text == self.stored_json() or text == self.model_dump_json()


def with_defaults(name: Any, body: Any, defaults: dict[str, Any]) -> Any:
    """A task's body with a `defaults:` section applied, as validation sees it (the workers
    validate a stored spec's tasks one at a time: cluster/dag.py)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return body
    merged = {"name": name, **body}
    for key in ("timeout", "priority", "kill_grace", "cwd"):
        if key == "timeout" and body.get("type") == "approval":
            continue  # a default compute timeout is not a deadline for a person
        if key in defaults and key not in body:
            merged[key] = defaults[key]
    default_env = defaults.get("env")
    if isinstance(default_env, dict) and default_env:
        task_env = body.get("env")
        merged["env"] = (
            {**default_env, **task_env}
            if isinstance(task_env, dict)
            else (task_env if "env" in body else dict(default_env))
        )
    default_retry = defaults.get("retry")
    if isinstance(default_retry, dict) and default_retry:
        task_retry = body.get("retry")
        if task_retry is None:
            merged["retry"] = dict(default_retry)
        elif isinstance(task_retry, dict):
            merged["retry"] = {**default_retry, **task_retry}
    return merged


def _check_needs(tasks: Mapping[str, Sequence[str]], section: str) -> None:
    """`tasks` maps each task of `section` to its `needs`: each dependency exists once, and
    no chain of them comes back around."""
    for name, needs in tasks.items():
        seen: set[str] = set()
        for dep in needs:
            if dep == name:
                raise SpecError(f"cycle: {dep} -> {dep}", task=name, field="needs")
            if dep in seen:
                raise SpecError(f"dependency {dep!r} listed twice", task=name, field="needs")
            seen.add(dep)
            if dep not in tasks:
                raise SpecError(
                    f"unknown dependency {dep!r} (not in {section})", task=name, field="needs"
                )
    cycle = _find_cycle(tasks)
    if cycle:
        raise SpecError("cycle: " + " -> ".join(cycle), task=cycle[0], field="needs")


def _find_cycle(tasks: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of `needs` (`a -> b` reads "a needs b"), or None: Kahn's algorithm, O(tasks +
    edges); the tasks it cannot order each need another unordered one, so following such needs
    from any of them must come back around."""
    waiting = {name: len(needs) for name, needs in tasks.items()}
    dependents: dict[str, list[str]] = {}
    for name, needs in tasks.items():
        for dep in needs:
            dependents.setdefault(dep, []).append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        for name in dependents.get(ready.pop(), ()):
            waiting[name] -= 1
            if waiting[name] == 0:
                ready.append(name)
    left = {name for name, count in waiting.items() if count}
    if not left:
        return None
    path: list[str] = []
    at: dict[str, int] = {}
    name = next(n for n in tasks if n in left)
    while name not in at:
        at[name] = len(path)
        path.append(name)
        name = next(dep for dep in tasks[name] if dep in left)
    return [*path[at[name] :], name]


def _check_graph_first(data: dict[str, Any]) -> bool:
    """`_check_graph`'s dependency checks on the raw data, before each task is validated: a
    big workflow with one bad dependency or a cycle is refused in the time of one walk over
    its names (validating 20,000 tasks first took most of a second). Only data whose shape
    validation cannot change is checked here; anything else is left to the full validation,
    which checks the graph again on the built tasks. True: every section was checked (the
    built tasks have the same `needs`, so the full validation need not walk them again)."""
    graphs: list[tuple[dict[str, list[str]], str]] = []
    for section in ("tasks", "on_failure"):
        tasks = data.get(section)
        if tasks is None:
            continue
        if not isinstance(tasks, dict) or not tasks:
            return False
        needs: dict[str, list[str]] = {}
        for name, body in tasks.items():
            deps = [] if body is None else body.get("needs", []) if isinstance(body, dict) else 0
            if (
                not isinstance(name, str)
                or not isinstance(deps, list)
                or not all(isinstance(d, str) for d in deps)
            ):
                return False
            needs[name] = deps
        graphs.append((needs, section))
    if len(graphs) == 2 and not graphs[0][0].keys().isdisjoint(graphs[1][0]):
        return False  # the full validation names the clash first
    for needs, section in graphs:
        _check_needs(needs, section)
    return True


def validate_spec(
    data: Any, *, file: str | None = None, task_types: TaskTypeCheck | None
) -> WorkflowSpec:
    """Build a WorkflowSpec from plain data, turning every problem into one SpecError.

    Each task's type is checked by `task_types` (None: not checked). This module loads no
    plugin and imports no executor: `reviewflow.validate_spec` (config.validate_spec) loads the
    workflow's plugins first and passes the task-type registry.
    """
    if not isinstance(data, dict):
        raise SpecError(f"a workflow must be a mapping, got {type(data).__name__}", file=file)
    try:
        check_data(data)  # the limits first: nothing proportional to the data before them
        context: dict[str, Any] = {"data_checked": True}
        if _check_graph_first(data):
            context["graph_checked"] = True
        if task_types is not None:
            context["task_types"] = task_types
        return WorkflowSpec.model_validate(data, context=context)
    except SpecError as exc:
        raise exc.with_file(file) if file else exc from None
    except ValidationError as exc:
        raise spec_error_from(exc, file=file) from None


def spec_error_from(exc: ValidationError, *, file: str | None = None) -> SpecError:
    """The first error of a pydantic ValidationError, naming task and field."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    task = field = None
    if len(loc) >= 2 and loc[0] in ("tasks", "on_failure"):
        task = loc[1]
        field = ".".join(loc[2:]) or None
    else:
        field = ".".join(loc) or None
    message = first["msg"]
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, SpecError):
        return SpecError(
            ctx_error.message,
            file=file,
            task=ctx_error.task or task,
            field=ctx_error.field or field,
        )
    if isinstance(ctx_error, FieldError):
        field = f"{field}.{ctx_error.field}" if field else ctx_error.field
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "missing":
        message = "missing required field"
    elif first["type"] == "extra_forbidden":
        message = "unknown field (typo?)"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return SpecError(message, file=file, task=task, field=field)


_NO_DEFAULTS = TaskDefaults()
_TASKS: TypeAdapter[dict[str, TaskSpec]] = TypeAdapter(dict[str, TaskSpec])
