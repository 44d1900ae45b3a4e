"""GET /runs answered by the database: text search, time bounds, counts by state, and pages
that walk every matching run once, past the 10,000 runs the old scan in Python stopped at."""

from __future__ import annotations

from apihelpers import AUTH, AppFactory

from reviewflow.store import RunRecord, SQLiteStore


def test_search_counts_and_pages(make_client: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = make_client(execute=False)
    store = SQLiteStore(tmp_path / "rf.db")
    try:
        for i in range(10_050):
            rec = RunRecord(
                run_id=f"run-{i:05d}",
                workflow="alpha" if i % 2 else "beta",
                state="failed" if i % 10 == 0 else "succeeded",
                spec="{}",
                meta={},
                created_at=float(i),
            )
            store.create_run(rec, [], [])
    finally:
        store.close()
    # the oldest matching run is only reached beyond the newest 10,000
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"q": "RUN-0000", "limit": 100, **({"cursor": cursor} if cursor else {})}
        doc = client.get("/runs", params=params, headers=AUTH).json()
        seen += [r["run_id"] for r in doc["runs"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"run-{i:05d}" for i in range(9, -1, -1)]

    doc = client.get(
        "/runs", params={"workflow": "beta", "counts": "true", "limit": 1}, headers=AUTH
    ).json()
    assert doc["counts"] == {"failed": 1005, "succeeded": 4020}
    assert doc["runs"][0]["run_id"] == "run-10048"

    doc = client.get("/runs", params={"since": 100, "until": 103}, headers=AUTH).json()
    assert [r["run_id"] for r in doc["runs"]] == ["run-00102", "run-00101", "run-00100"]
    assert "counts" not in doc
