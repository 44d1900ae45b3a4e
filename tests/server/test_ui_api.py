"""The run page's JSON reads (/ui/api/...): what the task panel shows of one task."""

from __future__ import annotations

from apihelpers import AUTH


def test_the_panel_of_a_fan_in_names_its_first_needs_and_counts_the_rest(idle) -> None:
    shards = [f"shard-{i:02d}" for i in range(25)]
    tasks = {s: {"type": "shell", "run": ["true"]} for s in shards}
    tasks["report"] = {"type": "shell", "run": ["true"], "needs": shards}
    run_id = idle.submit({"name": "fan", "tasks": tasks})
    doc = idle.get(f"/ui/api/runs/{run_id}/tasks/report", headers=AUTH).json()
    assert doc["needs"] == shards[:20]
    assert doc["needs_total"] == 25
    assert doc["state"] == "blocked" and doc["attempts"] == []
    shard = idle.get(f"/ui/api/runs/{run_id}/tasks/shard-03", headers=AUTH).json()
    assert shard["needs"] == [] and shard["needs_total"] == 0


def test_a_task_panel_or_log_of_an_unknown_run_or_task_is_a_404_naming_it(idle) -> None:
    run_id = idle.submit({"name": "one", "tasks": {"a": {"type": "shell", "run": ["true"]}}})
    for path, field in [
        (f"/ui/api/runs/{run_id}/tasks/nope", "task"),
        ("/ui/api/runs/no-such-run/tasks/a", "run_id"),
        (f"/runs/{run_id}/tasks/nope/log", "task"),
        ("/runs/no-such-run/tasks/a/log", "run_id"),
    ]:
        resp = idle.get(path, headers=AUTH)
        assert resp.status_code == 404, (path, resp.text)
        assert field in resp.text, (path, resp.text)
