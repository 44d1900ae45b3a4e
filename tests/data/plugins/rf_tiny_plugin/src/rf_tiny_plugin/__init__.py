"""A tiny reviewflow plugin: the `echo_param` task type and the `licence` check."""

from __future__ import annotations

from typing import Any

from reviewflow.errors import SpecError
from reviewflow.review.findings import Finding

HEADER = "SPDX-License-Identifier"


class EchoParamTaskType:
    """Returns its params (and the attempt): a task type from an installed package."""

    name = "echo_param"

    def validate(self, spec: Any) -> None:
        if not spec.params:
            raise SpecError("echo_param needs params", task=spec.name, field="params")

    async def execute(self, ctx: Any) -> dict[str, Any]:
        return {"echo": dict(ctx.params), "attempt": ctx.attempt, "plugin": "rf_tiny_plugin"}


def licence_header(ctx: Any) -> Any:
    """An error for each changed .py file without an SPDX licence header in its first lines."""
    findings = []
    for path in ctx.files(".py"):
        head = (ctx.root / path).read_text(encoding="utf-8").splitlines()[:3]
        if not any(HEADER in line for line in head):
            findings.append(
                Finding(
                    check=ctx.check,
                    file=path,
                    line=1,
                    severity="error",
                    rule="licence-header",
                    message=f"no {HEADER} line at the top of the file",
                )
            )
    return ctx.result(findings, what="licence headers")
