"""What POST /runs accepts (reviewflow.server.submit): a workflow as YAML or JSON, or a template
request (a review of a checkout), with `meta=key=value` parameters; anything else is a 4xx
naming the field at fault (415 for a content type it does not read), and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apihelpers import AUTH, Client, sh, workflow

OK = workflow({"a": sh("echo hello-from-a"), "b": sh("echo b", needs=["a"])})


def test_a_json_workflow_is_accepted_too(client: Client) -> None:
    resp = client.post("/runs", json=OK, headers=AUTH)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["created"] is True and body["workflow"] == "wf"
    assert resp.headers["location"] == f"/runs/{body['run_id']}"
    assert client.wait(body["run_id"])["state"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "ctype", "field", "words"),
    [
        ("name: wf\ntasks:\n  a: {run: [true]\n", "application/yaml", "body", "line"),
        (
            "name: wf\ntasks:\n  a: {run: [true], timeot: 5}\n",
            "text/yaml",
            "tasks.a.timeot",
            "unknown field",
        ),
        (
            "name: wf\ntasks:\n  a: {run: [true], needs: [zz]}\n",
            "application/yaml",
            "tasks.a.needs",
            "unknown dependency",
        ),
        ("name: wf\ntasks: {}\n", "application/yaml", "tasks", "at least one task"),
        ("- just\n- a list\n", "application/yaml", "body", "mapping"),
        (
            "name: wf\ntasks:\n  a: {run: ['${HOME}']}\n",
            "application/yaml",
            "tasks.a.run[0]",
            "HOME is not set",
        ),
        ('{"name": "wf", "tasks": ', "application/json", "body", "invalid JSON"),
        ('["a"]', "application/json", "body", "JSON object"),
        (
            '{"name": "wf", "tasks": {"a": {"run": ["true"], "retry": {"max_retries": -1}}}}',
            "application/json",
            "tasks.a.retry.max_retries",
            "greater than or equal",
        ),
        ('{"name": "wf", "tasks": {"a": {"run": 5}}}', "application/json", "tasks.a.run", ""),
        (b"name: \xff\n", "application/yaml", "body", "UTF-8"),
        (
            '{"name": "wf", "tasks": {"a": {"run": ["echo", "\\ud800"]}}}',
            "application/json",
            "body",
            "surrogate",
        ),
        (
            'name: wf\ntasks:\n  a: {run: [echo, "\\udc00"]}\n',
            "application/yaml",
            "body",
            "escape",  # libyaml refuses the escape itself: "invalid Unicode character escape"
        ),
    ],
)
def test_bad_workflows_are_422_naming_the_field(
    idle: Client, body: str | bytes, ctype: str, field: str, words: str
) -> None:
    resp = idle.post("/runs", content=body, headers={**AUTH, "Content-Type": ctype})
    assert resp.status_code == 422, resp.text
    doc = resp.json()
    assert doc["field"] == field, doc
    assert words in doc["error"], doc
    assert idle.get("/runs", headers=AUTH).json()["runs"] == []


def test_unsupported_content_type_is_415(idle: Client) -> None:
    resp = idle.post("/runs", content="hello", headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status_code == 415 and resp.json()["field"] == "Content-Type"
    resp = idle.post("/runs", content="hello", headers=AUTH)
    assert resp.status_code == 415


def test_bad_meta_is_422(idle: Client) -> None:
    resp = idle.post(
        "/runs",
        params={"meta": "novalue"},
        content=json.dumps(OK),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["field"] == "meta"


def test_a_template_run_is_a_review_of_a_checkout(idle: Client, tmp_path: Path) -> None:
    sha, base = "a" * 40, "B" * 40
    body = {
        "template": "pr",
        "params": {"repo_url": "https://github.com/o/r.git", "sha": sha, "base": base, "pr": 7},
    }
    resp = idle.post("/runs", json=body, headers={**AUTH, "Idempotency-Key": "tpl-1"})
    assert resp.status_code == 201, resp.text
    doc = idle.status("tpl-1")
    assert doc["workflow"] == "review-pr"
    assert doc["meta"] == {"template": "pr", "repo": "o/r", "sha": sha, "base": "b" * 40, "pr": "7"}
    assert [t["name"] for t in doc["tasks"]] == [
        "init",
        "fetch-base",
        "fetch-head",
        "checkout",
        "review",
    ]
    store = idle.app.state.rf.store  # type: ignore[attr-defined]
    spec = json.loads(store.get_run("tpl-1").spec)
    review = spec["tasks"]["review"]["run"]
    assert review[:2] == ["reviewflow", "review"]
    assert str(tmp_path / "work" / "tpl-1" / "repo") in review
    assert spec["tasks"]["fetch-head"]["run"][-2:] == ["https://github.com/o/r.git", sha]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (
            {"repo_url": "http://github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
            "params.repo_url",
        ),
        (
            {"repo_url": "https://u:p@github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
            "params.repo_url",
        ),
        ({"repo_url": "--upload-pack=x", "sha": "a" * 40, "base": "b" * 40}, "params.repo_url"),
        ({"repo_url": "https://github.com/o/r", "sha": "a" * 39, "base": "b" * 40}, "params.sha"),
        ({"repo_url": "https://github.com/o/r", "sha": "a" * 40}, "params.base"),
        (
            {"repo_url": "https://github.com/o/r", "sha": "a" * 40, "base": "b" * 40, "x": 1},
            "params.x",
        ),
    ],
)
def test_bad_template_parameters_are_422(
    idle: Client, params: dict[str, object], field: str
) -> None:
    resp = idle.post("/runs", json={"template": "pr", "params": params}, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    resp = idle.post(
        "/runs",
        json={
            "template": "nope",
            "params": {"repo_url": "https://github.com/o/r", "sha": "a" * 40, "base": "b" * 40},
        },
        headers=AUTH,
    )
    assert resp.status_code == 422 and resp.json()["field"] == "template"
