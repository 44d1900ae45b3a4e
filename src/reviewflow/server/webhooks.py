"""POST /webhooks/github: a review run per pull request head, from signed GitHub events.

The body's HMAC-SHA256 with REVIEWFLOW_WEBHOOK_SECRET must match `X-Hub-Signature-256`
(compared in constant time) before anything in it is read; without a configured secret the
endpoint answers 503 to everything. `pull_request` events with action opened, synchronize or
reopened start the review run of that repository + PR + head sha (review_run: a shallow fetch
of the head and base commits, then `reviewflow review`); its run id is derived from them, so a
redelivered event answers with the same run and starts nothing. Every other event is answered
202 and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from ..logs import log
from .context import ServerContext, blocking, context
from .http import ApiError, Json
from .review_run import BadParam, clone_url, commit, review_run_id, review_spec
from .schemas import WebhookAnswer, errors
from .submit import parse_json

router = APIRouter(tags=["webhooks"])
Ctx = Annotated[ServerContext, Depends(context)]
REVIEW_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
SIGNATURE_PREFIX = "sha256="
MAX_PR = 10**12


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def _get(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _ignored(ctx: ServerContext, why: str) -> Json:
    ctx.metrics.webhooks.labels("ignored").inc()
    return Json({"run_id": None, "created": None, "ignored": why}, status_code=202)


@router.post(
    "/webhooks/github",
    status_code=202,
    summary="GitHub webhook (pull_request events)",
    response_model=None,
    responses={
        202: {
            "model": WebhookAnswer,
            "description": "The review run of the PR head "
            "(created: false for a redelivery), or why the event was ignored.",
        },
        **errors(401, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object", "additionalProperties": True}}
            },
        }
    },
)
async def github(
    request: Request,
    ctx: Ctx,
    signature: Annotated[
        str | None,
        Header(
            alias="X-Hub-Signature-256", max_length=200, description="sha256=<hex HMAC of the body>"
        ),
    ] = None,
    event: Annotated[str | None, Header(alias="X-GitHub-Event", max_length=100)] = None,
    delivery: Annotated[str | None, Header(alias="X-GitHub-Delivery", max_length=100)] = None,
) -> Json:
    if ctx.webhook_secret is None:
        raise ApiError(503, "webhooks are off: no REVIEWFLOW_WEBHOOK_SECRET configured")
    body = await request.body()
    if not await blocking(signature_ok, ctx.webhook_secret, body, signature):
        ctx.metrics.webhooks.labels("bad_signature").inc()
        raise ApiError(401, "missing or bad X-Hub-Signature-256", "X-Hub-Signature-256")
    if event != "pull_request":
        return _ignored(ctx, f"event {event or '(none)'} is not reviewed")
    data = await ctx.reading(parse_json, body)
    action = _get(data, "action")
    if action not in REVIEW_ACTIONS:
        return _ignored(ctx, f"pull_request action {action!r} is not reviewed")
    repo = _get(data, "repository.full_name")
    if not isinstance(repo, str) or not repo or len(repo) > 300:
        raise ApiError(422, "missing repository.full_name", "repository.full_name")
    if ctx.webhook_repos and repo.lower() not in ctx.webhook_repos:
        return _ignored(ctx, f"repository {repo} is not in REVIEWFLOW_WEBHOOK_REPOS")
    number = _get(data, "pull_request.number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= MAX_PR:
        raise ApiError(422, "missing pull_request.number", "pull_request.number")
    try:
        sha = commit(_get(data, "pull_request.head.sha"), "pull_request.head.sha")
        base = commit(_get(data, "pull_request.base.sha"), "pull_request.base.sha")
        head_url = clone_url(
            _get(data, "pull_request.head.repo.clone_url"), "pull_request.head.repo.clone_url"
        )
        base_url = clone_url(
            _get(data, "pull_request.base.repo.clone_url") or head_url,
            "pull_request.base.repo.clone_url",
        )
    except BadParam as exc:
        raise ApiError(422, f"{exc.field}: {exc}", exc.field) from None
    run_id = review_run_id(repo, number, sha)
    spec = review_spec(
        template=ctx.webhook_template,
        repo_url=head_url,
        sha=sha,
        base=base,
        base_url=base_url,
        run_id=run_id,
        work_dir=ctx.work_dir,
        reviewflow=ctx.reviewflow_cmd,
        post_back=ctx.post_back(repo, number, run_id),
    )
    meta = {
        "repo": repo,
        "pr": str(number),
        "sha": sha,
        "base": base,
        "source": "github",
        "template": ctx.webhook_template,
    }
    if delivery:
        meta["delivery"] = delivery
    rid, created = await ctx.submit(spec, run_id=run_id, meta=meta)
    ctx.metrics.webhooks.labels("created" if created else "redelivered").inc()
    log.info(
        "webhook.pull_request",
        repo=repo,
        pr=number,
        sha=sha,
        run_id=rid,
        created=created,
        delivery=delivery,
    )
    return Json({"run_id": rid, "created": created, "ignored": None}, status_code=202)
