"""The review's DAG is derived from the change: `included()` and `build_review()`.

Changes are built directly (no git, no subprocess): with the empty tree as base and files
that do not exist in the work tree, nothing looks like a public API change unless a test
writes a module for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitrepo import change_of

from reviewflow.errors import SpecError
from reviewflow.review.builder import (
    APPROVAL_TASK,
    CHANGE_TASK,
    RUNNER,
    SUMMARY_TASK,
    VERDICT_TASK,
    build_review,
    included,
)
from reviewflow.review.change import Change, ChangedFile
from reviewflow.review.template import ReviewTemplate, load_template

ALWAYS = ["syntax", "lint", "format", "tests"]


def change(root: Path, *paths: str, status: str = "modified") -> Change:
    return change_of(
        root,
        [
            ChangedFile(path=p, status=status, lines=[(1, 2)])  # type: ignore[arg-type]
            for p in paths
        ],
    )


def custom(checks: dict[str, Any], **fields: Any) -> ReviewTemplate:
    return ReviewTemplate.model_validate({"name": "custom", "checks": checks, **fields})


@pytest.fixture(scope="module")
def pr() -> ReviewTemplate:
    return load_template("pr")


@pytest.fixture(scope="module")
def pr_bench(tmp_path_factory: pytest.TempPathFactory) -> ReviewTemplate:
    """The pr template with a benchmark command (without one there is no performance check)."""
    path = tmp_path_factory.mktemp("tmpl") / "bench.yaml"
    path.write_text(
        "extends: pr\nname: bench\n"
        "checks:\n  performance: {options: {command: [python, bench.py]}}\n"
    )
    return load_template(str(path))


def needs(spec: Any, task: str) -> list[str]:
    return list(spec.tasks[task].needs)


# ---------------------------------------------------------------------------- included()


def test_the_code_checks_are_always_included(pr: ReviewTemplate, tmp_path: Path) -> None:
    chosen = included(pr, change(tmp_path, "notes.txt"))
    assert chosen == dict.fromkeys(ALWAYS, "always")


def test_an_empty_change_still_gets_the_always_checks(pr: ReviewTemplate, tmp_path: Path) -> None:
    assert list(included(pr, change(tmp_path))) == ALWAYS


@pytest.mark.parametrize(
    "path",
    [
        "app/config.py",
        "settings_config.yaml",
        "secret_store.txt",
        "keys/id_rsa.pub",
        "password_reset.py",
        "auth/login.py",
        "api/token.txt",
        "credentials.json",
        "secrets.py",
        "id_rsa",
        ".env",
        "deploy/.env.production",
        "src/AuthService.java",
        "api_key.py",
        "certs/server.pem",
    ],
)
def test_sensitive_paths_bring_in_security_and_secrets(
    pr: ReviewTemplate, tmp_path: Path, path: str
) -> None:
    chosen = included(pr, change(tmp_path, "main.py", path))
    assert chosen["security"] == f"sensitive files changed: {path}"
    assert chosen["secrets"] == f"sensitive files changed: {path}"
    assert list(chosen)[:4] == ALWAYS


def test_a_deleted_sensitive_file_counts_too(pr: ReviewTemplate, tmp_path: Path) -> None:
    chosen = included(pr, change(tmp_path, "auth.py", status="deleted"))
    assert {"security", "secrets"} <= set(chosen)


@pytest.mark.parametrize(
    "path",
    [
        "main.py",
        "README.md",
        "docs/guide.md",
        "src/app/views.py",
        # words, not substrings: none of these holds a key, a token or a secret
        "keys.py",
        "monkey.py",
        "keyboard.py",
        "tokenizer.py",
        "reconfigure.py",
        "environment.py",
    ],
)
def test_other_paths_leave_security_and_secrets_out(
    pr: ReviewTemplate, tmp_path: Path, path: str
) -> None:
    chosen = included(pr, change(tmp_path, path))
    assert "security" not in chosen and "secrets" not in chosen


def test_the_sensitive_reason_names_at_most_three_files(pr: ReviewTemplate, tmp_path: Path) -> None:
    paths = ["a_token.txt", "b_token.txt", "c_token.txt", "d_token.txt"]
    chosen = included(pr, change(tmp_path, *paths))
    # pragma: allowlist nextline secret
    assert chosen["secrets"] == "sensitive files changed: a_token.txt, b_token.txt, c_token.txt"


def test_the_security_template_always_scans(tmp_path: Path) -> None:
    security = load_template("security")
    chosen = included(security, change(tmp_path, "notes.txt"))
    assert chosen == {
        **dict.fromkeys(ALWAYS, "always"),
        "security": "always",
        "secrets": "always",  # pragma: allowlist secret
        "dependencies": "always",
    }
    assert security.gates.require_all_checks is True and security.gates.max_warnings is None
    assert security.gates.min_changed_line_coverage == 80  # inherited from pr


@pytest.mark.parametrize(
    "path",
    [
        "requirements.txt",
        "requirements-dev.txt",
        "pyproject.toml",
        "poetry.lock",
        "uv.lock",
        "Pipfile",
        "Pipfile.lock",
        "setup.cfg",
        "setup.py",
        "sub/requirements.txt",
    ],
)
def test_dependency_files_bring_in_dependencies(
    pr: ReviewTemplate, tmp_path: Path, path: str
) -> None:
    chosen = included(pr, change(tmp_path, path))
    assert chosen["dependencies"] == f"dependency files changed: {path}"


@pytest.mark.parametrize("path", ["requirements.md", "lockfile.py", "deps/notes.txt"])
def test_other_files_leave_dependencies_out(pr: ReviewTemplate, tmp_path: Path, path: str) -> None:
    assert "dependencies" not in included(pr, change(tmp_path, path))


@pytest.mark.parametrize(
    "path",
    ["core/x.py", "src/app/engine/run.py", "database/q.sql", "cache/lru.py", "api/handlers/h.py"],
)
def test_performance_critical_paths_bring_in_performance(
    pr_bench: ReviewTemplate, tmp_path: Path, path: str
) -> None:
    chosen = included(pr_bench, change(tmp_path, path))
    assert chosen["performance"] == f"performance-critical paths changed: {path}"


def test_no_benchmark_command_no_performance_check(pr: ReviewTemplate, tmp_path: Path) -> None:
    assert "performance" not in included(pr, change(tmp_path, "core/x.py"))


@pytest.mark.parametrize("path", ["corex/y.py", "x/core.py", "api/views.py", "core"])
def test_other_paths_leave_performance_out(pr: ReviewTemplate, tmp_path: Path, path: str) -> None:
    assert "performance" not in included(pr, change(tmp_path, path))


def test_the_performance_paths_come_from_the_check_options(tmp_path: Path) -> None:
    tmpl = custom(
        {
            "performance": {
                "when": "performance",
                "options": {"paths": ["hot/"], "command": ["true"]},
            }
        }
    )
    assert "performance" in included(tmpl, change(tmp_path, "hot/loop.py"))
    assert "performance" not in included(tmpl, change(tmp_path, "core/x.py"))


def test_a_public_api_change_brings_in_docs(pr: ReviewTemplate, tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("def greet(name):\n    return name\n")
    chosen = included(pr, change(tmp_path, "lib.py", status="added"))
    assert chosen["docs"] == "public API changed: greet"


@pytest.mark.parametrize("path", ["_private.py", "tests/test_lib.py", "test_lib.py", "conftest.py"])
def test_private_and_test_modules_are_not_public_api(
    pr: ReviewTemplate, tmp_path: Path, path: str
) -> None:
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("def greet(name):\n    return name\n")
    assert "docs" not in included(pr, change(tmp_path, path, status="added"))


def test_a_private_function_is_not_public_api(pr: ReviewTemplate, tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("def _helper():\n    return 1\n")
    assert "docs" not in included(pr, change(tmp_path, "lib.py", status="added"))


def test_when_never_leaves_a_check_out(tmp_path: Path) -> None:
    tmpl = custom({"syntax": {}, "tests": {"when": "never"}})
    assert included(tmpl, change(tmp_path, "a.py")) == {"syntax": "always"}


# ---------------------------------------------------------------------------- build_review()


def test_the_order_is_syntax_then_lint_then_tests_and_format(
    pr: ReviewTemplate, tmp_path: Path
) -> None:
    spec = build_review(pr, change(tmp_path, "main.py"), out=tmp_path / "out")
    assert list(spec.tasks) == [CHANGE_TASK, *ALWAYS, SUMMARY_TASK]
    assert needs(spec, CHANGE_TASK) == []
    assert needs(spec, "syntax") == [CHANGE_TASK]
    assert needs(spec, "lint")[0] == CHANGE_TASK and "syntax" in needs(spec, "lint")
    for name in ("tests", "format"):
        assert needs(spec, name)[0] == CHANGE_TASK
        assert "lint" in needs(spec, name)
        assert not {"tests", "format"} & set(needs(spec, name))  # siblings run in parallel
    assert spec.failure_policy == "continue"
    assert spec.name == "review-pr"


def test_every_check_is_a_python_task_of_the_runner(pr: ReviewTemplate, tmp_path: Path) -> None:
    spec = build_review(pr, change(tmp_path, "auth.py"), out=tmp_path / "out")
    for name in ("syntax", "lint", "format", "tests", "security", "secrets"):
        task = spec.tasks[name]
        assert task.type == "python"
        assert task.call == f"{RUNNER}:run_check"
        assert task.params["check"] == name
        assert task.description == included(pr, change(tmp_path, "auth.py"))[name]
    assert spec.tasks["tests"].params["options"] == {"command": ["pytest", "-q"], "impacted": "map"}
    assert spec.tasks["tests"].timeout == 15 * 60
    assert spec.tasks["change"].call == f"{RUNNER}:change_result"
    assert spec.tasks["change"].params["change"]["files"][0]["path"] == "auth.py"


def test_independent_checks_only_need_the_change(pr_bench: ReviewTemplate, tmp_path: Path) -> None:
    spec = build_review(
        pr_bench, change(tmp_path, "auth.py", "requirements.txt", "core/x.py"), out=tmp_path / "out"
    )
    for name in ("security", "secrets", "dependencies", "performance"):
        assert needs(spec, name) == [CHANGE_TASK], name


def test_a_left_out_check_passes_its_needs_on(tmp_path: Path) -> None:
    tmpl = custom(
        {
            "syntax": {},
            "lint": {"when": "never", "needs": ["syntax"]},
            "tests": {"needs": ["lint"]},
            "format": {"needs": ["lint"]},
        }
    )
    spec = build_review(tmpl, change(tmp_path, "a.py"), out=tmp_path / "out")
    assert "lint" not in spec.tasks
    assert needs(spec, "tests") == [CHANGE_TASK, "syntax"]
    assert needs(spec, "format") == [CHANGE_TASK, "syntax"]


def test_needs_skip_over_a_chain_of_left_out_checks(tmp_path: Path) -> None:
    tmpl = custom(
        {
            "a": {},
            "b": {"when": "sensitive", "needs": ["a"]},
            "c": {"when": "never", "needs": ["b"]},
            "d": {"needs": ["c"]},
            "e": {"needs": ["b", "a"]},
        }
    )
    spec = build_review(tmpl, change(tmp_path, "x.txt"), out=tmp_path / "out")
    assert list(spec.tasks) == [CHANGE_TASK, "a", "d", "e", SUMMARY_TASK]
    assert needs(spec, "d") == [CHANGE_TASK, "a"]
    assert needs(spec, "e") == [CHANGE_TASK, "a"]  # once, though reached twice


def test_the_pr_template_without_lint_runs_tests_after_syntax(
    pr: ReviewTemplate, tmp_path: Path
) -> None:
    no_lint = ReviewTemplate.model_validate(
        {
            **pr.model_dump(),
            "checks": {
                **{k: v.model_dump() for k, v in pr.checks.items()},
                "lint": {"when": "never", "needs": ["syntax"]},
            },
        }
    )
    spec = build_review(no_lint, change(tmp_path, "a.py"), out=tmp_path / "out")
    assert "syntax" in needs(spec, "tests") and "syntax" in needs(spec, "format")


def test_the_summary_needs_everything_and_runs_whatever_happened(
    pr: ReviewTemplate, tmp_path: Path
) -> None:
    spec = build_review(
        pr, change(tmp_path, "auth.py", "requirements.txt"), out=tmp_path / "out", all_findings=True
    )
    summary = spec.tasks[SUMMARY_TASK]
    assert set(summary.needs) == set(spec.tasks) - {SUMMARY_TASK}
    assert summary.trigger == "all_done"
    assert summary.call == f"{RUNNER}:summarize"
    assert summary.params["out"] == str(tmp_path / "out")
    assert summary.params["all_findings"] is True
    assert summary.params["template"] == "pr"
    assert summary.params["gates"] == {
        "max_errors": 0,
        "max_warnings": None,
        "min_changed_line_coverage": 80.0,
        "fail_on_check_error": True,
        "require_all_checks": False,
    }


def test_the_summary_of_a_review_with_no_checks_needs_the_change(tmp_path: Path) -> None:
    tmpl = custom({"secrets": {"when": "sensitive"}})
    spec = build_review(tmpl, change(tmp_path, "a.txt"), out=tmp_path / "out")
    assert list(spec.tasks) == [CHANGE_TASK, SUMMARY_TASK]
    assert needs(spec, SUMMARY_TASK) == [CHANGE_TASK]


def test_an_approval_comes_after_the_checks_and_before_the_summary(tmp_path: Path) -> None:
    content = load_template("content")
    spec = build_review(content, change(tmp_path, "post.md"), out=tmp_path / "out")
    checks = ["metadata", "headings", "readability", "spelling", "links", "length"]
    checks += ["grammar", "style"]
    approval = spec.tasks[APPROVAL_TASK]
    assert approval.type == "approval"
    # The checks' own verdict first: an approval is asked only when it did not fail.
    assert needs(spec, VERDICT_TASK) == [CHANGE_TASK, *checks]
    assert spec.tasks[VERDICT_TASK].trigger == "all_done"
    assert needs(spec, APPROVAL_TASK) == [VERDICT_TASK]
    assert approval.trigger == "all_succeeded"
    assert approval.on_timeout == "reject"
    assert approval.timeout == 72 * 3600
    assert needs(spec, SUMMARY_TASK) == [CHANGE_TASK, *checks, VERDICT_TASK, APPROVAL_TASK]


@pytest.mark.parametrize("name", sorted([CHANGE_TASK, VERDICT_TASK, APPROVAL_TASK, SUMMARY_TASK]))
def test_reserved_check_names_are_rejected(tmp_path: Path, name: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\nchecks:\n  syntax: {{}}\n  {name}: {{uses: lint}}\n")
    with pytest.raises(SpecError, match=f"check name '{name}' is reserved") as caught:
        load_template(str(bad))
    assert caught.value.field == "checks"


def test_a_template_needing_an_unknown_check_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nchecks:\n  lint: {needs: [syntax]}\n")
    with pytest.raises(SpecError, match="needs unknown check 'syntax'") as caught:
        load_template(str(bad))
    assert caught.value.file == str(bad)


def test_a_user_template_extends_pr_key_by_key(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "name: mine\nextends: pr\ngates: {min_changed_line_coverage: 0}\n"
        "checks:\n  tests: {options: {args: [-x]}}\n  performance: {when: never}\n"
    )
    tmpl = load_template(str(mine))
    assert tmpl.gates.min_changed_line_coverage == 0
    assert tmpl.gates.max_errors == 0
    assert tmpl.checks["tests"].options == {
        "command": ["pytest", "-q"],
        "impacted": "map",
        "args": ["-x"],
    }
    assert tmpl.checks["tests"].needs == ["lint"]
    assert tmpl.sensitive_paths == load_template("pr").sensitive_paths
    assert "performance" not in included(tmpl, change(tmp_path, "core/x.py"))
