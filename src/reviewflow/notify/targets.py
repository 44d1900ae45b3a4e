"""`notifications:` entries: where a run's notifications go, validated like the rest of a spec.

A target names its kind (`webhook`, `slack`, `email`), the events it wants and how to reach it.
Secrets never sit in the spec (which is stored with the run and shown by `status`): a webhook's
signing secret, a Slack URL (its path is the credential) and an SMTP password are read from
environment variables named here, when the notification is sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

NotifyEvent = Literal[
    "run_finished",
    "run_failed",
    "approval_requested",
    "approval_escalated",
    "approval_timed_out",
]
EVENTS: tuple[NotifyEvent, ...] = (
    "run_finished",
    "run_failed",
    "approval_requested",
    "approval_escalated",
    "approval_timed_out",
)
"""Every event a target may ask for; a target without `events` gets them all."""
DEFAULT_RETRY_FOR = 24 * 3600.0
"""Seconds a notification is retried (exponential backoff) before it is marked failed."""
DEFAULT_SEND_TIMEOUT = 10.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class FieldError(ValueError):
    """A bad value of one field of a target (the spec's error names `notifications.N.<field>`)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_url(value: str) -> str:
    """An http(s) URL with a host and no user:password part (secrets come from the env)."""
    if not isinstance(value, str):
        raise ValueError("must be a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "no credentials in the URL: put the secret in an environment variable"
            " (secret_env, url_env or password_env)"
        )
    if any(c.isspace() for c in value):
        raise ValueError("URL contains whitespace")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _seconds(value: Any) -> Any:
    from ..spec import parse_duration  # spec imports this module

    return parse_duration(value)


Url = Annotated[str, AfterValidator(check_url)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Email = Annotated[str, AfterValidator(_email)]
Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class NotificationTarget(BaseModel):
    """One receiver of a run's notifications."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["webhook", "slack", "email"]
    events: list[NotifyEvent] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    url: Url | None = None
    """webhook, slack: where the JSON is POSTed."""
    url_env: EnvName | None = None
    """webhook, slack: an environment variable holding the URL (a Slack URL is a secret)."""
    secret_env: EnvName | None = None
    """webhook: the environment variable holding the HMAC-SHA256 signing secret."""
    host: str | None = None
    """email: the SMTP server."""
    port: int = Field(0, ge=0, le=65535)
    """email: the SMTP port (0: 465 with tls: implicit, 587 with starttls, else 25)."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password_env: EnvName | None = None
    sender: Email | None = Field(None, alias="from")
    to: list[Email] = Field(default_factory=list)
    timeout: Annotated[Seconds, Field(le=60)] = DEFAULT_SEND_TIMEOUT
    """Seconds one attempt may take (connect, send, answer)."""
    retry_for: Seconds = DEFAULT_RETRY_FOR
    """Seconds a notification is retried before it is given up (marked failed)."""

    @model_validator(mode="after")
    def _check_kind(self) -> NotificationTarget:
        if self.kind in ("webhook", "slack"):
            if (self.url is None) == (self.url_env is None):
                raise FieldError(f"a {self.kind} target needs exactly one of url, url_env", "url")
            extra = [f for f in ("host", "username", "password_env", "sender") if getattr(self, f)]
            if extra or self.to:
                name = {"sender": "from"}.get((extra or ["to"])[0], (extra or ["to"])[0])
                raise FieldError(f"{name} is for email targets", name)
            if self.kind == "slack" and self.secret_env:
                raise FieldError("slack targets are not signed (no secret_env)", "secret_env")
        else:
            for name in ("url", "url_env", "secret_env"):
                if getattr(self, name) is not None:
                    raise FieldError(f"{name} is for webhook and slack targets", name)
            if not self.host:
                raise FieldError("an email target needs host", "host")
            if not self.sender:
                raise FieldError("an email target needs from", "from")
            if not self.to:
                raise FieldError("an email target needs to (a list of addresses)", "to")
        return self

    def stored(self) -> dict[str, Any]:
        """The target as stored with the run and its outbox rows (names, never secrets)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


Notifications = list[NotificationTarget]


def load_targets(data: Any, *, file: str | None = None) -> list[NotificationTarget]:
    """Targets from plain data: a list, or a mapping with a `notifications` list (the server's
    `--notifications` file); a bad one is a SpecError naming the file and the field."""
    from pydantic import TypeAdapter, ValidationError

    from ..errors import SpecError
    from ..spec import spec_error_from

    if isinstance(data, dict) and set(data) == {"notifications"}:
        data = data["notifications"]
    if not isinstance(data, list):
        raise SpecError("expected a list of targets (or notifications: [...])", file=file)
    try:
        return TypeAdapter(list[NotificationTarget]).validate_python(data)
    except ValidationError as exc:
        error = spec_error_from(exc, file=file)
        if error.field and error.field[0].isdigit():
            error = SpecError(error.message, file=file, field=f"notifications.{error.field}")
        raise error from None
