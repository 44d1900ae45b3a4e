"""`reviewflow review` as a user runs it: a real `python -m reviewflow` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Reviewed:
    """One finished review: exit code, output, and where its files are."""

    code: int
    stdout: str
    stderr: str
    cwd: Path
    out: Path
    argv: list[str] = field(default_factory=list)

    @cached_property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text(encoding="utf-8"))

    @cached_property
    def sarif(self) -> dict[str, Any]:
        return json.loads((self.out / "report.sarif").read_text(encoding="utf-8"))

    @cached_property
    def markdown(self) -> str:
        return (self.out / "report.md").read_text(encoding="utf-8")

    @property
    def findings(self) -> set[tuple[str, str | None, int | None, str]]:
        """(check, file, line, rule) of every reported finding."""
        return {(f["check"], f["file"], f["line"], f["rule"]) for f in self.report["findings"]}

    def __str__(self) -> str:  # shown by a failing assertion
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_review(
    cwd: Path, repo: Path | str, *args: str | Path, out: Path | None = None, db: bool = True
) -> Reviewed:
    """`python -m reviewflow review REPO [--db CWD/rf.db] [--out OUT] ARGS` in `cwd`.

    Without `db` and `out`, reviewflow uses its defaults under `cwd/.reviewflow/`."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("REVIEWFLOW_DB", None)
    env.pop("CI", None)  # in CI a review stops at an approval gate: tests say when they want it
    argv = [sys.executable, "-m", "reviewflow", "review", str(repo)]
    if db:
        argv += ["--db", str(cwd / "rf.db")]
    if out is not None:
        argv += ["--out", str(out)]
    argv += [str(a) for a in args]
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=110, start_new_session=True
    )
    where = out
    if where is None:
        found = [ln for ln in done.stdout.splitlines() if ln.startswith("report: ")]
        where = Path(found[-1].split()[1]).parent if found else cwd
    return Reviewed(done.returncode, done.stdout, done.stderr, cwd, Path(where), argv)


def user_template(folder: Path, name: str, body: dict[str, Any], extends: str = "pr") -> Path:
    """A template file of the user's kind, extending a shipped one."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "extends": extends, **body}), encoding="utf-8")
    return path


def only_checks(extends: str, *keep: str) -> dict[str, Any]:
    """Template overrides that switch off every check of `extends` but `keep` (and the
    approval): a test of one check does not depend on the others the template grows."""
    from reviewflow.review.template import load_template

    names = load_template(extends).checks
    return {
        "approval": None,
        "checks": {name: {"when": "never"} for name in names if name not in keep},
    }
