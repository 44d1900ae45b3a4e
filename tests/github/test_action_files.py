"""The composite action (action.yml) and the example workflow: valid against GitHub's published
schemas, free of `${{ }}` in shell scripts (script injection), documented verbatim, and the
action's shell steps doing what the docs say when run with bash as the runner runs them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdblocks import Block, blocks, doc_pages

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "examples" / "github" / "reviewflow.yml"
DOC = ROOT / "docs" / "github-actions.md"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
EXPR = re.compile(r"\$\{\{")
BASH = shutil.which("bash")


def load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def action_steps() -> list[dict[str, Any]]:
    return load(ACTION)["runs"]["steps"]


def workflow_steps() -> list[dict[str, Any]]:
    return [step for job in load(WORKFLOW)["jobs"].values() for step in job["steps"]]


def step(name: str) -> dict[str, Any]:
    [found] = [s for s in action_steps() if s.get("name") == name]
    return found


def yaml_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in blocks(page) if b.lang in ("yaml", "yml")]


def github_kind(doc: Any) -> str | None:
    """ "workflow" or "action" for a GitHub file; None for anything else (a reviewflow workflow,
    a review template)."""
    if isinstance(doc, dict) and "jobs" in doc and ("on" in doc or True in doc):
        return "workflow"
    if isinstance(doc, dict) and isinstance(doc.get("runs"), dict) and "using" in doc["runs"]:
        return "action"
    return None


def doc_github_files() -> list[tuple[Block, str]]:
    found = []
    for b in yaml_blocks():
        kind = github_kind(yaml.safe_load(b.text))
        if kind:
            found.append((b, kind))
    return found


# ----------------------------------------------------------------------------- schemas


def check_schema(schema: str, path: Path) -> None:
    assert CHECK_JSONSCHEMA.exists(), "check-jsonschema is a dev dependency"
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)],
)
def test_files_pass_githubs_schema(schema: str, path: Path) -> None:
    check_schema(schema, path)


def test_every_yaml_block_of_the_docs_parses() -> None:
    """A reader copies these; one that is not YAML (`run: echo "verdict: $V"`, a colon-space in a
    plain scalar) fails on GitHub before any step runs."""
    assert yaml_blocks()
    for b in yaml_blocks():
        try:
            yaml.safe_load(b.text)
        except yaml.YAMLError as exc:
            pytest.fail(f"{b.where}: not YAML: {exc}")


@pytest.mark.parametrize(
    "found", doc_github_files(), ids=lambda f: f"{f[0].where}-{f[1]}" if f else ""
)
def test_doc_workflows_pass_githubs_schema(found: tuple[Block, str], tmp_path: Path) -> None:
    b, kind = found
    copy = tmp_path / ("action.yml" if kind == "action" else "workflow.yml")
    copy.write_text(b.text, encoding="utf-8")
    check_schema(f"vendor.github-{kind}s", copy)
    steps = [s for job in yaml.safe_load(b.text).get("jobs", {}).values() for s in job["steps"]]
    for s in steps:
        assert not EXPR.search(s.get("run", "")), f"{b.where}: step {s.get('name')!r} interpolates"


def test_the_docs_show_both_ways_to_set_it_up() -> None:
    kinds = [(b.path, kind) for b, kind in doc_github_files()]
    assert kinds.count((DOC, "workflow")) == 2  # the ready file and the one calling the action


def test_the_schema_check_would_catch_the_old_doc_block(tmp_path: Path) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load('steps:\n  - if: always()\n    run: echo "verdict: $VERDICT"\n')
    bad = tmp_path / "workflow.yml"
    bad.write_text("on: push\njobs:\n  a:\n    steps: []\n", encoding="utf-8")  # no runs-on
    with pytest.raises(AssertionError):
        check_schema("vendor.github-workflows", bad)


# ----------------------------------------------------------------------------- no index names

# A PEP 508 name with optional extras and version, and nothing that names where it comes from (a
# URL, a path, a variable): pip looks such a name up in a package index.
INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*([<>=!~;].*)?")

OPTIONS_WITH_A_FILE = {"-r", "--requirement", "-c", "--constraint"}


def index_names(script: str) -> list[str]:
    """Requirements that `pip install` lines of a shell script would fetch from an index."""
    joined = script.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True) if "pip" in line else []
        if "install" not in words:
            continue
        args = words[words.index("install") + 1 :]
        values = {i + 1 for i, a in enumerate(args) if a in OPTIONS_WITH_A_FILE}
        found += [
            a
            for i, a in enumerate(args)
            if i not in values and not a.startswith("-") and INDEX_NAME.fullmatch(a)
        ]
    return found


def test_the_name_check_would_catch_an_index_install() -> None:
    assert index_names("python -m pip install 'reviewflow[review]'") == ["reviewflow[review]"]
    assert index_names("pip install --quiet reviewflow==0.1.0 \\\n  ruff") == [
        "reviewflow==0.1.0",
        "ruff",
    ]
    assert index_names('pip install "$spec" ./x "r[a] @ git+https://h/o/r@abc"') == []
    assert index_names("pip install --require-hashes -r requirements.txt") == []


def all_run_steps() -> list[tuple[str, dict[str, Any]]]:
    steps = [("action.yml", s) for s in action_steps()]
    steps += [("examples/github/reviewflow.yml", s) for s in workflow_steps()]
    for b, kind in doc_github_files():
        doc = yaml.safe_load(b.text)
        jobs = doc["jobs"].values() if kind == "workflow" else [doc["runs"]]
        steps += [(b.where, s) for job in jobs for s in job.get("steps", [])]
    return [(where, s) for where, s in steps if "run" in s]


def test_no_step_installs_a_name_from_an_index() -> None:
    """reviewflow is not on PyPI: whoever registers the name would run code in the adopter's job
    with its pull-requests: write token. Installs come from the action's files or a pinned sha."""
    runs = all_run_steps()
    assert any("pip install" in s["run"] for _, s in runs)
    for where, s in runs:
        assert index_names(s["run"]) == [], f"{where}: step {s.get('name')!r}"


# ----------------------------------------------------------------------------- injection guard


@pytest.mark.parametrize(
    ("path", "steps"), [(ACTION, action_steps), (WORKFLOW, workflow_steps)], ids=["action", "wf"]
)
def test_no_expression_inside_run_scripts(path: Path, steps: Any) -> None:
    """`${{ inputs.x }}` or `${{ github.event.* }}` in `run:` is pasted into the script before bash
    parses it: a PR title or branch name would run as code. Values go through `env:`."""
    runs = [s for s in steps() if "run" in s]
    assert runs
    for s in runs:
        assert not EXPR.search(s["run"]), f"{path.name}: step {s.get('name')!r} interpolates"
        assert s.get("shell", "bash") == "bash"


def test_the_guard_would_catch_an_interpolation() -> None:
    bad = yaml.safe_load('run: reviewflow review --base "${{ inputs.base }}"')
    assert EXPR.search(bad["run"])


# ----------------------------------------------------------------------------- action contract


def test_action_inputs_and_outputs() -> None:
    doc = load(ACTION)
    assert doc["runs"]["using"] == "composite"
    assert {"icon", "color"} <= set(doc["branding"])
    defaults = {name: spec.get("default") for name, spec in doc["inputs"].items()}
    assert defaults == {
        "base": "${{ github.event.pull_request.base.sha }}",
        "template": "pr",
        "path": ".",
        "out": "reviewflow-report",
        "version": "self",
        "comment": "true",
        "check": "false",
        "sarif": "true",
        "artifact-name": "reviewflow-report",
        "python-version": "3.11",
        "github-token": "${{ github.token }}",
    }
    assert set(doc["outputs"]) == {"verdict", "report"}
    ids = {s.get("id") for s in action_steps()}
    text = ACTION.read_text(encoding="utf-8")
    for name in re.findall(r"inputs\.([A-Za-z0-9_-]+)", text):
        assert name in doc["inputs"], name
    for sid in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", text):
        assert sid in ids, sid


def test_action_reports_even_when_changes_are_requested() -> None:
    uses = {s.get("uses", "").split("@")[0]: s for s in action_steps()}
    sarif = uses["github/codeql-action/upload-sarif"]
    assert sarif["with"]["sarif_file"] == "${{ inputs.out }}/report.sarif"
    assert sarif["if"].startswith("always()") and "inputs.sarif == 'true'" in sarif["if"]
    comment = step("Comment on the pull request")
    assert comment["if"].startswith("always()") and "inputs.comment == 'true'" in comment["if"]
    assert "github.event_name == 'pull_request'" in comment["if"]
    assert comment["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    assert step("Verdict")["if"].startswith("always()")
    assert uses["actions/setup-python"]["with"]["python-version"] == "${{ inputs.python-version }}"


def test_workflow_shape() -> None:
    doc = load(WORKFLOW)
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads a bare `on` as true
    assert on == {"pull_request": {"types": ["opened", "synchronize", "reopened"]}}
    assert doc["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "security-events": "write",
        "actions": "read",
    }
    steps = workflow_steps()
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert uses["actions/checkout"]["with"]["fetch-depth"] == 0
    assert "actions/setup-python" in uses and "actions/upload-artifact" in uses
    assert uses["github/codeql-action/upload-sarif"]["if"].startswith("always()")
    runs = " ".join(s["run"] for s in steps if "run" in s)
    assert 'pip install "reviewflow[review] @ $REVIEWFLOW"' in runs
    assert 'reviewflow review --base "$BASE" --out reviewflow-report' in runs
    assert "reviewflow github comment" in runs
    [review] = [s for s in steps if s.get("name") == "Review"]
    assert review["env"]["BASE"] == "${{ github.event.pull_request.base.sha }}"


def test_doc_contains_the_workflow_verbatim() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert "```yaml\n" + WORKFLOW.read_text(encoding="utf-8") + "```\n" in doc
    for word in ("pull_request_target", "permissions", "fork", "action_path", "request_changes"):
        assert word in doc


# ----------------------------------------------------------------------------- shell steps, run


FAKE_REVIEWFLOW = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_ARGS"
if [ "$1" = review ]; then
  if [ -n "$FAKE_VERDICT" ]; then
    mkdir -p "$8"
    printf '{"verdict": "%s"}' "$FAKE_VERDICT" > "$8/report.json"
    echo "# report" > "$8/report.md"
    echo "{}" > "$8/report.sarif"
  fi
  exit "$FAKE_CODE"
fi
exit "$FAKE_CODE"
"""


@pytest.fixture
def runner_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a fake `reviewflow` (records argv) and `python`; the runner's output files."""
    if BASH is None:
        pytest.skip("bash is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "reviewflow"
    fake.write_text(FAKE_REVIEWFLOW, encoding="utf-8")
    fake.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "ws").mkdir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "FAKE_ARGS": str(tmp_path / "args.txt"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_REPOSITORY": "octo-org/octo-repo",
    }


def run_step(name: str, env: dict[str, str], cwd: Path, **step_env: str) -> int:
    """Run one action step as the runner does: `bash --noprofile --norc -eo pipefail`."""
    s = step(name)
    assert set(step_env) == set(s.get("env", {})), "give every env var the step declares"
    return run_script(s["run"], {**env, **step_env}, cwd)


def run_script(run: str, env: dict[str, str], cwd: Path) -> int:
    """A step's `run:` script, run by bash as the runner runs it."""
    script = cwd.parent / "step.sh"
    script.write_text(run, encoding="utf-8")
    done = subprocess.run(
        [str(BASH), "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr
    return done.returncode


def outputs(env: dict[str, str]) -> dict[str, str]:
    lines = Path(env["GITHUB_OUTPUT"]).read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines)


def review_env(out: str) -> dict[str, str]:
    return {"BASE": "abc123", "TEMPLATE": "pr", "INPUT_PATH": "my dir/$(touch pwned)", "OUT": out}


def test_review_step_keeps_going_on_request_changes(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    env = {**runner_env, "FAKE_VERDICT": "request_changes", "FAKE_CODE": "1"}
    assert run_step("Review", env, ws, **review_env("out dir")) == 0
    args = Path(env["FAKE_ARGS"]).read_text(encoding="utf-8").splitlines()
    assert args == [
        "review",
        "my dir/$(touch pwned)",
        "--base",
        "abc123",
        "--template",
        "pr",
        "--out",
        "out dir",
    ]
    assert not (ws / "pwned").exists()  # values are data, never code
    assert outputs(env) == {
        "exit-code": "1",
        "verdict": "request_changes",
        "report": "out dir/report.md",
        "sarif": "out dir/report.sarif",
    }
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8") == "# report\n"

    verdict = {"CODE": "1", "VERDICT": "request_changes"}
    assert run_step("Verdict", env, ws, **verdict) == 1  # the action fails at the very end
    assert run_step("Verdict", env, ws, CODE="0", VERDICT="approve") == 0


def test_review_step_on_bad_input_reports_nothing(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**runner_env, "FAKE_VERDICT": "", "FAKE_CODE": "2"}
    assert run_step("Review", env, tmp_path / "ws", **review_env("rf")) == 0
    assert outputs(env) == {"exit-code": "2", "verdict": "", "report": "", "sarif": ""}
    assert run_step("Verdict", env, tmp_path / "ws", CODE="2", VERDICT="") == 2


def test_a_forged_verdict_cannot_add_outputs(runner_env: dict[str, str], tmp_path: Path) -> None:
    env = {**runner_env, "FAKE_VERDICT": "approve\\nreport=/etc/passwd", "FAKE_CODE": "0"}
    assert run_step("Review", env, tmp_path / "ws", **review_env("rf")) == 0
    assert outputs(env)["verdict"] == ""
    assert outputs(env)["report"] == "rf/report.md"


@pytest.mark.parametrize(
    ("code", "fork", "expected"), [("0", "false", 0), ("1", "false", 1), ("1", "true", 0)]
)
def test_comment_step_forgives_forks_only(
    runner_env: dict[str, str], tmp_path: Path, code: str, fork: str, expected: int
) -> None:
    env = {**runner_env, "FAKE_CODE": code}
    rc = run_step(
        "Comment on the pull request",
        env,
        tmp_path / "ws",
        GITHUB_TOKEN="t",
        PR="7",
        REPORT="rf/report.md",
        FROM_FORK=fork,
    )
    assert rc == expected
    args = Path(env["FAKE_ARGS"]).read_text(encoding="utf-8").splitlines()
    assert args == [
        "github",
        "comment",
        "--repo",
        "octo-org/octo-repo",
        "--pr",
        "7",
        "--report",
        "rf/report.md",
    ]


CHECK_ENV = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_RUN_ID": "42",
}
DETAILS = "https://github.com/octo-org/octo-repo/actions/runs/42"


def test_check_steps_run_only_when_asked() -> None:
    start, complete = step("Start the check run"), step("Complete the check run")
    assert start["if"] == "inputs.check == 'true'"
    assert complete["if"] == "always() && steps.start-check.outcome == 'success'"
    names = [s.get("name") for s in action_steps()]
    assert names.index("Start the check run") < names.index("Review")
    assert names.index("Complete the check run") > names.index("Review")
    head = "${{ github.event.pull_request.head.sha || github.sha }}"
    for s in (start, complete):
        assert s["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
        assert s["env"]["SHA"] == head


@pytest.mark.parametrize("code", ["0", "1"])
def test_start_check_step_never_fails_the_job(
    runner_env: dict[str, str], tmp_path: Path, code: str
) -> None:
    env = {**runner_env, **CHECK_ENV, "FAKE_CODE": code}
    sha = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
    assert run_step("Start the check run", env, tmp_path / "ws", GITHUB_TOKEN="t", SHA=sha) == 0
    args = Path(env["FAKE_ARGS"]).read_text(encoding="utf-8").splitlines()
    assert args == [
        "github",
        "check",
        "--in-progress",
        "--repo",
        "octo-org/octo-repo",
        "--sha",
        sha,
        "--details-url",
        DETAILS,
    ]


@pytest.mark.parametrize(
    ("report", "code", "what"),
    [
        ("out dir/report.md", "1", ["--report", "out dir"]),
        (
            "",
            "2",
            ["--error", "reviewflow review exited with code 2 without a report; see the log"],
        ),
        ("", "", ["--error", "the review did not finish (the job failed or was cancelled)"]),
    ],
)
def test_complete_check_step_publishes_the_report_or_the_failure(
    runner_env: dict[str, str], tmp_path: Path, report: str, code: str, what: list[str]
) -> None:
    env = {**runner_env, **CHECK_ENV, "FAKE_CODE": "0"}
    sha = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
    rc = run_step(
        "Complete the check run",
        env,
        tmp_path / "ws",
        GITHUB_TOKEN="t",
        SHA=sha,
        OUT="out dir",
        REPORT=report,
        CODE=code,
        FROM_FORK="false",
    )
    assert rc == 0
    args = Path(env["FAKE_ARGS"]).read_text(encoding="utf-8").splitlines()
    assert args == [
        "github",
        "check",
        "--repo",
        "octo-org/octo-repo",
        "--sha",
        sha,
        "--details-url",
        DETAILS,
        *what,
    ]


@pytest.mark.parametrize(
    ("code", "fork", "expected"), [("0", "false", 0), ("1", "false", 1), ("1", "true", 0)]
)
def test_complete_check_step_forgives_forks_only(
    runner_env: dict[str, str], tmp_path: Path, code: str, fork: str, expected: int
) -> None:
    env = {**runner_env, **CHECK_ENV, "FAKE_CODE": code}
    rc = run_step(
        "Complete the check run",
        env,
        tmp_path / "ws",
        GITHUB_TOKEN="t",
        SHA="0" * 40,
        OUT="rf",
        REPORT="rf/report.md",
        CODE="0",
        FROM_FORK=fork,
    )
    assert rc == expected


def test_fork_test_is_false_outside_pull_requests() -> None:
    """On a push there is no pull_request: `null != repo` alone would be true and forgive
    every failure there."""
    fork = step("Complete the check run")["env"]["FROM_FORK"]
    assert fork.startswith("${{ github.event.pull_request != null &&")


def test_docs_show_the_check_input_with_its_permission() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert "checks: write" in doc and 'check: "true"' in doc
    assert "reviewflow github check --repo OWNER/NAME --sha SHA --report DIR" in doc
    [action_flow] = [
        yaml.safe_load(b.text)
        for b, kind in doc_github_files()
        if kind == "workflow" and "uses: OWNER/reviewflow@" in b.text
    ]
    assert action_flow["permissions"]["checks"] == "write"
    [uses] = [
        s
        for job in action_flow["jobs"].values()
        for s in job["steps"]
        if "uses" in s and s["uses"].startswith("OWNER/reviewflow@")
    ]
    assert uses["with"]["check"] == "true"


SHA = "0123456789abcdef0123456789abcdef01234567"  # pragma: allowlist secret
PINNED = f"git+https://github.com/octo-org/reviewflow@{SHA}"
REFUSED = [
    "reviewflow[review]",  # the old default: a name nobody at reviewflow owns on PyPI
    "reviewflow[review]==0.1.0",
    "reviewflow",
    "",
    "git+https://github.com/octo-org/reviewflow@main",  # a branch moves
    "git+https://github.com/octo-org/reviewflow@v0.1.0",  # so can a tag
    f"git+https://github.com/octo-org/reviewflow@{SHA[:12]}",  # a short sha is ambiguous
    f"git+http://github.com/octo-org/reviewflow@{SHA}",  # no TLS
    f"reviewflow[review] @ git+https://github.com/octo-org/reviewflow@{SHA}",
    f"{PINNED}\nreviewflow",
    f"{PINNED} --index-url https://evil.example",
    "--index-url=https://evil.example reviewflow",
    "self; touch pwned",
    "/tmp/somewhere",
]


@pytest.fixture
def fake_pip(runner_env: dict[str, str]) -> Path:
    """`python` records its argv (one per line) instead of installing; returns that record."""
    bin_dir = Path(runner_env["PATH"].split(os.pathsep)[0])
    (bin_dir / "python").unlink()
    fake_python = bin_dir / "python"
    fake_python.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> "$FAKE_ARGS.py"\n', encoding="utf-8")
    fake_python.chmod(0o755)
    return Path(runner_env["FAKE_ARGS"] + ".py")


def installed(record: Path) -> list[str]:
    """What the recorded `python -m pip install ... SPEC` calls installed (their last argument)."""
    if not record.exists():
        return []
    calls = record.read_text(encoding="utf-8").split("-m\n")[1:]
    return [call.splitlines()[-1] for call in calls]


@pytest.mark.parametrize(
    ("version", "spec"),
    [
        ("self", "/actions/rf dir[review]"),
        (PINNED, f"reviewflow[review] @ {PINNED}"),
    ],
)
def test_install_step_installs_the_checkout_or_a_pinned_commit(
    runner_env: dict[str, str], fake_pip: Path, tmp_path: Path, version: str, spec: str
) -> None:
    env = {**runner_env, "FAKE_CODE": "0", "GITHUB_ACTION_PATH": "/actions/rf dir"}
    assert run_step("Install reviewflow", env, tmp_path / "ws", VERSION=version) == 0
    assert installed(fake_pip) == [spec]
    assert Path(env["FAKE_ARGS"]).read_text(encoding="utf-8") == "--version\n"


@pytest.mark.parametrize("version", REFUSED)
def test_install_step_refuses_anything_else(
    runner_env: dict[str, str], fake_pip: Path, tmp_path: Path, version: str
) -> None:
    env = {**runner_env, "FAKE_CODE": "0", "GITHUB_ACTION_PATH": "/actions/rf"}
    assert run_step("Install reviewflow", env, tmp_path / "ws", VERSION=version) == 2
    assert installed(fake_pip) == []
    assert not (tmp_path / "ws" / "pwned").exists()


@pytest.mark.parametrize(("value", "code"), [(PINNED, 0), *[(v, 2) for v in REFUSED]])
def test_example_workflow_installs_only_a_pinned_commit(
    runner_env: dict[str, str], fake_pip: Path, tmp_path: Path, value: str, code: int
) -> None:
    [install] = [s for s in workflow_steps() if s.get("name") == "Install reviewflow"]
    assert set(install["env"]) == {"REVIEWFLOW"}
    # As shipped, the placeholder stops the job with a clear error instead of installing.
    assert "OWNER" in install["env"]["REVIEWFLOW"] and "COMMIT_SHA" in install["env"]["REVIEWFLOW"]
    rc = run_script(install["run"], {**runner_env, "REVIEWFLOW": value}, tmp_path / "ws")
    assert rc == code
    assert installed(fake_pip) == ([f"reviewflow[review] @ {PINNED}"] if code == 0 else [])


def test_example_workflow_placeholder_fails_clearly(
    runner_env: dict[str, str], fake_pip: Path, tmp_path: Path
) -> None:
    [install] = [s for s in workflow_steps() if s.get("name") == "Install reviewflow"]
    env = {**runner_env, **install["env"]}
    assert run_script(install["run"], env, tmp_path / "ws") == 2
    assert installed(fake_pip) == []
