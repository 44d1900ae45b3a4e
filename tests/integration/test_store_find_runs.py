"""Runs lists answered by the database: filters, text search, metadata, time and cursor pages
give the same runs on every store as the same predicate in Python, and counts by state."""

from __future__ import annotations

from reviewflow.store import RunFilter, RunRecord, Store


def _seed(store: Store, n: int = 60) -> list[RunRecord]:
    runs = []
    for i in range(n):
        rec = RunRecord(
            run_id=f"{'Lint' if i % 3 == 0 else 'test'}-{i:03d}",
            workflow="pr-check" if i % 2 else "nightly",
            state=["succeeded", "failed", "running"][i % 3],
            spec="{}",
            meta={"repo": "octo/widgets" if i % 4 == 0 else "octo/other", "pr": str(i % 5)},
            created_at=1000.0 + (i // 2),  # pairs share a timestamp: ties broken by run id
        )
        assert store.create_run(rec, [], [])
        runs.append(rec)
    return runs


def _pages(store: Store, where: RunFilter, size: int) -> list[str]:
    seen: list[str] = []
    for _ in range(100):
        page = store.find_runs(where, size)
        seen += [r.run_id for r in page]
        if len(page) < size:
            return seen
        last = page[-1]
        where = RunFilter(**{**_fields(where), "before": (last.created_at, last.run_id)})
    raise AssertionError("paging did not end")


def _fields(where: RunFilter) -> dict[str, object]:
    return {k: getattr(where, k) for k in RunFilter.__slots__}


def _expected(runs: list[RunRecord], where: RunFilter) -> list[str]:
    found = [r for r in runs if where.matches(r)]
    return [r.run_id for r in sorted(found, key=lambda r: (r.created_at, r.run_id), reverse=True)]


def test_filters_and_pages_match_the_python_predicate(store: Store) -> None:
    runs = _seed(store)
    filters = [
        RunFilter(),
        RunFilter(state="failed"),
        RunFilter(workflow="pr-check"),
        RunFilter(search="LINT"),
        RunFilter(search="check"),  # the workflow name
        RunFilter(meta=(("repo", "octo/widgets"),)),
        RunFilter(meta=(("repo", "octo/other"), ("pr", "3"))),
        RunFilter(created_after=1010.0, created_before=1020.0),
        RunFilter(state="running", workflow="nightly", search="lint"),
    ]
    for where in filters:
        expected = _expected(runs, where)
        assert _pages(store, where, 7) == expected, where
        assert expected or where.state == "running"


def test_newest_first_and_ties_by_run_id(store: Store) -> None:
    _seed(store, 4)
    assert [r.run_id for r in store.find_runs(RunFilter(), 10)] == [
        "test-002",
        "Lint-003",
        "test-001",
        "Lint-000",
    ]


def test_counts_by_state_ignore_state_and_page(store: Store) -> None:
    runs = _seed(store)
    where = RunFilter(state="failed", workflow="nightly", before=(1005.0, "x"))
    counts = store.count_runs(where)
    nightly = [r for r in runs if r.workflow == "nightly"]
    assert counts == {
        s: sum(1 for r in nightly if r.state == s) for s in {r.state for r in nightly}
    }
    assert store.count_runs(RunFilter(search="no-such-run")) == {}


def test_search_is_a_substring_not_a_pattern(store: Store) -> None:
    _seed(store, 6)
    assert store.find_runs(RunFilter(search="%"), 10) == []
    assert store.find_runs(RunFilter(search="_"), 10) == []
    assert [r.run_id for r in store.find_runs(RunFilter(search="-00"), 3)] == [
        "test-005",
        "test-004",
        "test-002",  # ties on created_at: run id descending ("t" > "L")
    ]
