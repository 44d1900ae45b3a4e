-- Every statement of the PostgreSQL store (reviewflow.store.postgres), each under a
-- `-- name: <name>` line. Parameters are psycopg placeholders: %(name)s, or %s for the
-- positional Event tuples of reviewflow.store.base.

-- name: insert_run
INSERT INTO runs (run_id, workflow, state, spec, meta, created_at)
VALUES (%(run_id)s, %(workflow)s, %(state)s, %(spec)s, %(meta)s, %(created_at)s)
ON CONFLICT (run_id) DO NOTHING;

-- name: insert_task
INSERT INTO tasks (run_id, name, position, state, attempts, ready_at, started_at, finished_at,
                   next_attempt_at, result, error, errors, wait_reason, pid)
VALUES (%(run_id)s, %(name)s, %(position)s, %(state)s, %(attempts)s, %(ready_at)s,
        %(started_at)s, %(finished_at)s, %(next_attempt_at)s, %(result)s, %(error)s,
        %(errors)s, %(wait_reason)s, %(pid)s);

-- name: insert_event
-- Event ids come from an identity sequence: increasing in insert order but, across
-- transactions, not in commit order. Every transaction that inserts events of a run holds
-- that run's row lock (lock_run, or the insert of the run itself), so *within one run*
-- ids are committed in order and get_events(after_id) never skips a late commit.
INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s);

-- name: get_run
SELECT run_id, workflow, state, spec, meta, created_at, started_at, finished_at, error,
       owner, lease_until, request
FROM runs WHERE run_id = %(run_id)s;

-- name: list_runs
SELECT run_id, workflow, state, spec, meta, created_at, started_at, finished_at, error,
       owner, lease_until, request
FROM runs ORDER BY created_at DESC, run_id DESC LIMIT %(limit)s;

-- name: get_tasks
SELECT run_id, name, state, attempts, ready_at, started_at, finished_at, next_attempt_at,
       result, error, errors, wait_reason, pid
FROM tasks WHERE run_id = %(run_id)s ORDER BY position;

-- name: get_events
SELECT id, run_id, task, from_state, to_state, attempt, at, detail
FROM events WHERE run_id = %(run_id)s AND id > %(after_id)s ORDER BY id;

-- name: claim_run
-- Compare-and-swap of the owner in one statement: (claimed, run exists). lease_until is the
-- engine's clock; see reviewflow/store/postgres.py on moving liveness to the database clock.
WITH claimed AS (
    UPDATE runs SET owner = %(owner)s, lease_until = %(lease_until)s
    WHERE run_id = %(run_id)s AND owner IS NOT DISTINCT FROM %(expected)s
    RETURNING 1
)
SELECT EXISTS (SELECT FROM claimed), EXISTS (SELECT FROM runs WHERE run_id = %(run_id)s);

-- name: release_run
UPDATE runs SET owner = NULL, lease_until = NULL
WHERE run_id = %(run_id)s AND owner = %(owner)s;

-- name: lock_run
-- The row lock that serialises a run's writers (the owner's batches, approval decisions).
SELECT owner, request FROM runs WHERE run_id = %(run_id)s FOR NO KEY UPDATE;

-- name: renew_lease
UPDATE runs SET lease_until = %(lease_until)s, request = NULL WHERE run_id = %(run_id)s;

-- name: write_run
UPDATE runs SET lease_until = %(lease_until)s, request = NULL, state = %(state)s,
                started_at = %(started_at)s, finished_at = %(finished_at)s, error = %(error)s
WHERE run_id = %(run_id)s;

-- name: update_task
UPDATE tasks SET state = %(state)s, attempts = %(attempts)s, ready_at = %(ready_at)s,
                 started_at = %(started_at)s, finished_at = %(finished_at)s,
                 next_attempt_at = %(next_attempt_at)s, result = %(result)s,
                 error = %(error)s, errors = %(errors)s, wait_reason = %(wait_reason)s,
                 pid = %(pid)s
WHERE run_id = %(run_id)s AND name = %(name)s;

-- name: request
UPDATE runs SET request = %(command)s WHERE run_id = %(run_id)s;

-- name: open_approval
-- No row back means no such run (nothing is inserted then).
INSERT INTO approvals (run_id, task, requested_at)
SELECT run_id, %(task)s, %(now)s FROM runs WHERE run_id = %(run_id)s
ON CONFLICT (run_id, task) DO UPDATE
    SET requested_at = coalesce(approvals.requested_at, excluded.requested_at)
RETURNING run_id, task, requested_at, decision, approver, comment, decided_at;

-- name: get_approval
SELECT run_id, task, requested_at, decision, approver, comment, decided_at
FROM approvals WHERE run_id = %(run_id)s AND task = %(task)s;

-- name: decide_approval
-- No row back means a decision was already recorded.
INSERT INTO approvals (run_id, task, decision, approver, comment, decided_at)
VALUES (%(run_id)s, %(task)s, %(decision)s, %(approver)s, %(comment)s, %(now)s)
ON CONFLICT (run_id, task) DO UPDATE
    SET decision = excluded.decision, approver = excluded.approver,
        comment = excluded.comment, decided_at = excluded.decided_at
    WHERE approvals.decision IS NULL
RETURNING run_id, task, requested_at, decision, approver, comment, decided_at;
