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
-- that run's row lock from before the insert to its commit (lock_cluster_run, count_off_run,
-- try_lock_runs, or the insert of the run itself), so *within one run* ids are committed in
-- order and get_events(after_id) never skips a late commit.
INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s);

-- name: get_run
SELECT run_id, workflow, state, spec, meta, created_at, started_at, finished_at, error,
       owner, lease_until, request, mode
FROM runs WHERE run_id = %(run_id)s;

-- name: get_run_without_spec
SELECT run_id, workflow, state, '', meta, created_at, started_at, finished_at, error,
       owner, lease_until, request, mode
FROM runs WHERE run_id = %(run_id)s;

-- name: list_runs
SELECT run_id, workflow, state, spec, meta, created_at, started_at, finished_at, error,
       owner, lease_until, request, mode
FROM runs ORDER BY created_at DESC, run_id DESC LIMIT %(limit)s;

-- name: find_runs
-- A filter given as NULL is off; the page continues after (before_at, before_id). Without the
-- spec: a list has no use for it (4.4 MB for 10k tasks), and the dashboard polls it every 2 s.
SELECT run_id, workflow, state, '', meta, created_at, started_at, finished_at, error,
       owner, lease_until, request, mode
FROM runs
WHERE (%(state)s::text IS NULL OR state = %(state)s::text)
  AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
  AND (%(search)s::text IS NULL OR strpos(lower(run_id), %(search)s::text) > 0
       OR strpos(lower(workflow), %(search)s::text) > 0)
  AND (%(meta)s::jsonb IS NULL OR meta::jsonb @> %(meta)s::jsonb)
  AND (%(after)s::float8 IS NULL OR created_at >= %(after)s::float8)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s::float8)
  AND (%(before_at)s::float8 IS NULL OR created_at < %(before_at)s::float8
       OR (created_at = %(before_at)s::float8 AND run_id < %(before_id)s::text))
ORDER BY created_at DESC, run_id DESC LIMIT %(limit)s;

-- name: count_runs
SELECT state, count(*) FROM runs
WHERE (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
  AND (%(search)s::text IS NULL OR strpos(lower(run_id), %(search)s::text) > 0
       OR strpos(lower(workflow), %(search)s::text) > 0)
  AND (%(meta)s::jsonb IS NULL OR meta::jsonb @> %(meta)s::jsonb)
  AND (%(after)s::float8 IS NULL OR created_at >= %(after)s::float8)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s::float8)
GROUP BY state;

-- name: get_tasks
SELECT run_id, name, state, attempts, ready_at, started_at, finished_at, next_attempt_at,
       result, error, errors, wait_reason, pid
FROM tasks WHERE run_id = %(run_id)s ORDER BY position;

-- name: get_events
SELECT id, run_id, task, from_state, to_state, attempt, at, detail
FROM events WHERE run_id = %(run_id)s AND id > %(after_id)s ORDER BY id LIMIT %(limit)s;

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

-- ===================================================================== workers (cluster/)
-- Runs with mode 'workers' are executed task by task by `reviewflow worker` processes. Every
-- time below is the database clock (db_now), so hosts with skewed clocks agree on leases.

-- name: db_now
SELECT extract(epoch FROM clock_timestamp())::double precision;

-- name: insert_cluster_run
INSERT INTO runs (run_id, workflow, state, spec, meta, created_at, started_at, mode,
                  open_main, open_hooks, deadline)
VALUES (%(run_id)s, %(workflow)s, 'running', %(spec)s, %(meta)s, %(now)s, %(now)s, 'workers',
        %(open_main)s, %(open_hooks)s, %(deadline)s)
ON CONFLICT (run_id) DO NOTHING;

-- name: insert_new_cluster_runs
-- New runs in one statement, whatever their number (a scheduler's batch of slots: one round trip,
-- not several per run): the runs, their subscriptions, their tasks as their first transaction
-- leaves them (roots ready or due) and their first events, each JSON array prepared as if every
-- run were new; an id that exists already is left untouched, and so is everything of it here.
-- Returns the ids that were new. Events get their ids in array order.
WITH new AS (
    INSERT INTO runs (run_id, workflow, state, spec, meta, created_at, started_at, mode,
                      open_main, open_hooks, deadline)
    SELECT r.run_id, r.workflow, 'running', r.spec, r.meta, %(now)s, %(now)s, 'workers',
           r.open_main, r.open_hooks, r.deadline
    FROM json_to_recordset(%(runs)s::json) AS r(run_id text, workflow text, spec text, meta json,
                                                open_main integer, open_hooks integer,
                                                deadline double precision)
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id
), subscribed AS (
    INSERT INTO outbox_sources (run_id, source, config)
    SELECT s.run_id, s.source, s.config
    FROM json_to_recordset(%(sources)s::json) AS s(run_id text, source text, config text)
    WHERE s.run_id IN (SELECT run_id FROM new)
    ON CONFLICT (run_id, source) DO UPDATE SET config = excluded.config
), tasked AS (
    INSERT INTO tasks (run_id, name, position, state, hook, remaining, concurrency_key,
                       key_limit, run_limit, ready_at, sort_key, held, wait_reason, due_at)
    SELECT t.run_id, t.name, t.position, t.state, t.hook, t.remaining, t.concurrency_key,
           t.key_limit, t.run_limit, t.ready_at, t.sort_key, t.held, t.wait_reason, t.due_at
    FROM json_to_recordset(%(tasks)s::json) AS t(run_id text, name text, position integer,
                                                 state text, hook boolean, remaining integer,
                                                 concurrency_key text, key_limit integer,
                                                 run_limit integer, ready_at double precision,
                                                 sort_key double precision, held text,
                                                 wait_reason text, due_at double precision)
    WHERE t.run_id IN (SELECT run_id FROM new)
), logged AS (
    INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)
    SELECT e->>0, e->>1, e->>2, e->>3, (e->>4)::int, (e->>5)::float8, e->>6
    FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS v(e, i)
    WHERE e->>0 IN (SELECT run_id FROM new)
    ORDER BY i
)
SELECT run_id FROM new;

-- name: lock_cluster_run
-- Every transaction that changes a workers-mode run's tasks beyond a claim holds this lock
-- (or, only to record successes, the run's gate shared: read_cluster_run). The run's gate
-- first (an advisory lock: exclusive here, so no transaction holding it shared is in flight),
-- then its row. The spec (4.4 MB for 10k tasks) only for a process that has not parsed it yet.
WITH gate AS (SELECT pg_advisory_xact_lock(7302, hashtext(%(run_id)s)))
SELECT state, outcome, error, open_main, open_hooks, hooks_started, request,
       CASE WHEN %(with_spec)s THEN spec END, meta, created_at
FROM runs, gate WHERE run_id = %(run_id)s FOR NO KEY UPDATE OF runs;

-- name: run_gate_shared
-- A record transaction that only ends attempts in success, without dependents to count off,
-- holds the run's gate shared: any number of them go at once, none while a transaction that
-- decides for the whole run (lock_cluster_run) is in flight. Its own statement: the next one
-- reads the run after the wait.
SELECT pg_advisory_xact_lock_shared(7302, hashtext(%(run_id)s));

-- name: read_cluster_run
-- lock_cluster_run's columns, without the row lock (the run's gate is held shared).
SELECT state, outcome, error, open_main, open_hooks, hooks_started, request,
       CASE WHEN %(with_spec)s THEN spec END, meta, created_at
FROM runs WHERE run_id = %(run_id)s;

-- name: count_off_run
-- The last statement before COMMIT of a transaction holding the run's gate shared: counts its
-- ended tasks off the run and takes the row lock, so that its events, inserted next, get ids
-- in commit order within the run (see insert_event). The task that takes open_main to zero
-- leaves a request to settle the run (its outcome is decided under lock_cluster_run: by the
-- worker right after the commit, or by any worker's maintenance if that one died).
UPDATE runs SET open_main = open_main - %(main)s, open_hooks = open_hooks - %(hooks)s,
                request = CASE WHEN open_main - %(main)s <= 0 AND NOT hooks_started
                               THEN coalesce(request, 'settle') ELSE request END
WHERE run_id = %(run_id)s
RETURNING open_main, hooks_started;

-- name: write_cluster_run
UPDATE runs SET state = %(state)s, outcome = %(outcome)s, error = %(error)s,
                open_main = %(open_main)s, open_hooks = %(open_hooks)s,
                hooks_started = %(hooks_started)s, finished_at = %(finished_at)s,
                request = %(request)s, deadline = %(deadline)s
WHERE run_id = %(run_id)s;

-- name: cluster_rows
-- The columns the DAG logic needs (not result: it can be large and is never rewritten).
SELECT name, state, attempts, hook, remaining, owner, lease_until, lost_attempts, errors,
       error, concurrency_key, key_limit, run_limit, pid, held, started_at, ready_at,
       finished_at, next_attempt_at, wait_reason, due_at, cancel_reason, sort_key
FROM tasks WHERE run_id = %(run_id)s AND name = ANY(%(names)s);

-- name: save_cluster_rows
-- Every changed row of a run in one statement (rows as one JSON array: one parameter to send,
-- whatever their number), each guarded by the state (and owner) the decision was made on: a
-- claim racing with it makes that row apply to nothing, and then the statement fails with a
-- division by zero (fewer rows than %(n)s), which aborts the transaction (dag.GUARD_FAILED:
-- tried again). Checked here, not by reading the rows back: the check needs no round trip of
-- its own, and a transaction with nothing else to read sends it with its COMMIT.
WITH saved AS (
UPDATE tasks t SET state = v.state, attempts = v.attempts, ready_at = v.ready_at,
                   finished_at = v.finished_at, next_attempt_at = v.next_attempt_at,
                   error = v.error, errors = v.errors, wait_reason = v.wait_reason,
                   pid = v.pid, remaining = v.remaining, held = v.held, due_at = v.due_at,
                   owner = v.owner, lease_until = v.lease_until,
                   lost_attempts = v.lost_attempts, cancel_reason = v.cancel_reason,
                   sort_key = v.sort_key, started_at = v.started_at
FROM json_to_recordset(%(rows)s::json)
     AS v(name text, state text, attempts int, remaining int, owner text,
          lease_until float8, lost_attempts int, errors text, error text, pid int, held text,
          ready_at float8, finished_at float8, next_attempt_at float8, wait_reason text,
          due_at float8, cancel_reason text, sort_key float8, started_at float8,
          old_state text, old_owner text)
WHERE t.run_id = %(run_id)s AND t.name = v.name AND t.state = v.old_state
  AND t.owner IS NOT DISTINCT FROM v.old_owner
RETURNING t.name
)
SELECT 1 / (count(*) = %(n)s)::int FROM saved;

-- name: save_results
UPDATE tasks t SET result = v.result
FROM unnest(%(names)s::text[], %(results)s::text[]) AS v(name, result)
WHERE t.run_id = %(run_id)s AND t.name = v.name;

-- name: insert_events
-- A batch of events in one statement (one JSON array of [run_id, task, from, to, attempt,
-- at, detail]), ids in list order (see insert_event on the run lock).
INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)
SELECT e->>0, e->>1, e->>2, e->>3, (e->>4)::int, (e->>5)::float8, e->>6
FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS v(e, i)
ORDER BY i;

-- name: insert_new_events
-- insert_events for a batch a worker sends again after an error: its first sending may have
-- committed (the reply was lost), so events stored already (every column equal) are left out.
INSERT INTO events (run_id, task, from_state, to_state, attempt, at, detail)
SELECT e->>0, e->>1, e->>2, e->>3, (e->>4)::int, (e->>5)::float8, e->>6
FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS v(e, i)
WHERE NOT EXISTS (
    SELECT 1 FROM events x
    WHERE x.run_id = e->>0 AND x.at = (e->>5)::float8 AND x.to_state = e->>3
      AND x.task IS NOT DISTINCT FROM e->>1 AND x.from_state IS NOT DISTINCT FROM e->>2
      AND x.attempt IS NOT DISTINCT FROM (e->>4)::int AND x.detail IS NOT DISTINCT FROM e->>6)
ORDER BY i;

-- name: decrement_remaining
-- Returns the rows as cluster_rows reads them: those reaching zero are made ready next.
UPDATE tasks t SET remaining = t.remaining - v.n
FROM (SELECT unnest(%(names)s::text[]) AS name, unnest(%(counts)s::int[]) AS n) v
WHERE t.run_id = %(run_id)s AND t.name = v.name AND t.state = 'blocked'
RETURNING t.name, t.state, t.attempts, t.hook, t.remaining, t.owner, t.lease_until,
          t.lost_attempts, t.errors, t.error, t.concurrency_key, t.key_limit, t.run_limit,
          t.pid, t.held, t.started_at, t.ready_at, t.finished_at, t.next_attempt_at,
          t.wait_reason, t.due_at, t.cancel_reason, t.sort_key;

-- name: set_remaining
UPDATE tasks t SET remaining = v.n
FROM (SELECT unnest(%(names)s::text[]) AS name, unnest(%(counts)s::int[]) AS n) v
WHERE t.run_id = %(run_id)s AND t.name = v.name AND t.state = 'blocked';

-- name: open_tasks
-- Tasks a stopping run cancels. FOR UPDATE waits for a claim in flight; the row it claimed is
-- then re-checked and left out (it is running: see mark_running_cancelled).
SELECT name, state, hook, concurrency_key FROM tasks
WHERE run_id = %(run_id)s AND state IN ('blocked', 'ready', 'retry_wait')
  AND (%(hooks)s OR NOT hook)
FOR UPDATE;

-- name: cancel_tasks
UPDATE tasks SET state = %(to)s, finished_at = %(now)s, wait_reason = NULL, held = NULL,
                 due_at = NULL, next_attempt_at = NULL
WHERE run_id = %(run_id)s AND name = ANY(%(names)s)
  AND state IN ('blocked', 'ready', 'retry_wait');

-- name: mark_running_cancelled
-- Running attempts of a stopping run: their workers see the reason at their next heartbeat.
UPDATE tasks SET cancel_reason = %(reason)s
WHERE run_id = %(run_id)s AND state = 'running' AND cancel_reason IS NULL
  AND (%(hooks)s OR NOT hook)
RETURNING name;

-- name: failed_main_tasks
SELECT name FROM tasks WHERE run_id = %(run_id)s AND state = 'failed' AND NOT hook
ORDER BY position;

-- name: hold_run_ready
-- Tasks held for a key or the run's limit too: a slot freeing must not release them while
-- the run is paused (once resumed, their claim checks the limits again).
UPDATE tasks SET held = 'paused', wait_reason = 'run paused'
WHERE run_id = %(run_id)s AND state = 'ready' AND held IS DISTINCT FROM 'paused';

-- name: release_paused
UPDATE tasks SET held = NULL, wait_reason = NULL
WHERE run_id = %(run_id)s AND state = 'ready' AND held = 'paused';

-- name: claim_tasks
-- The claim: the best ready tasks, locked without waiting for other workers' locks, turned
-- running in the same statement. Attempts are counted when they start.
WITH picked AS (
    SELECT run_id, name, started_at FROM tasks
    WHERE state = 'ready' AND held IS NULL AND sort_key IS NOT NULL  -- workers runs only
    ORDER BY sort_key, position  -- ties: definition order, as in the embedded engine
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET state = 'running', attempts = t.attempts + 1, started_at = %(now)s,
                   owner = %(owner)s, lease_until = %(now)s + %(ttl)s, wait_reason = NULL,
                   cancel_reason = NULL, pid = NULL
FROM picked
WHERE t.run_id = picked.run_id AND t.name = picked.name AND t.state = 'ready'
RETURNING t.run_id, t.name, t.attempts, t.concurrency_key, t.key_limit, t.run_limit,
          t.sort_key, picked.started_at, t.ready_at, t.lost_attempts, t.position;

-- name: try_lock_runs
-- The run locks a claim can take without waiting (it writes those runs' start events itself).
SELECT run_id FROM runs WHERE run_id = ANY(%(runs)s) ORDER BY run_id
FOR NO KEY UPDATE SKIP LOCKED;

-- name: best_ready
-- The best sort key among ready tasks: a recording worker starts a dependent itself only if
-- no ready task should go first.
SELECT sort_key FROM tasks WHERE state = 'ready' AND held IS NULL AND sort_key IS NOT NULL
ORDER BY sort_key, position LIMIT 1;

-- name: key_lock
-- Serialises the limit checks (and the hand-over of freed slots) of one key across workers.
SELECT pg_advisory_xact_lock(hashtextextended(%(lock)s, 7301));

-- name: count_key_running
-- Tasks of the key that count against a limit (a run naming the key without a limit neither
-- counts nor frees slots: its tasks never release held ones).
SELECT count(*) FROM tasks
WHERE concurrency_key = %(key)s AND state = 'running' AND key_limit IS NOT NULL
  AND wait_reason IS NULL;

-- name: count_run_running
SELECT count(*) FROM tasks
WHERE run_id = %(run_id)s AND state = 'running' AND wait_reason IS NULL;

-- name: hold_back
-- A claimed task over its key's or run's limit goes back to ready, held until a slot frees.
UPDATE tasks SET state = 'ready', attempts = attempts - 1, started_at = %(started_at)s,
                 owner = NULL, lease_until = NULL, held = %(held)s, wait_reason = %(reason)s
WHERE run_id = %(run_id)s AND name = %(name)s AND owner = %(owner)s AND state = 'running';

-- name: unhold_key
-- A task of a run paused meanwhile stays held, for the pause.
UPDATE tasks t SET held = CASE WHEN r.state = 'paused' THEN 'paused' END,
                   wait_reason = CASE WHEN r.state = 'paused' THEN 'run paused' END
FROM runs r
WHERE r.run_id = t.run_id AND (t.run_id, t.name) IN (
    SELECT run_id, name FROM tasks
    WHERE concurrency_key = %(key)s AND held = 'key' AND state = 'ready'
    ORDER BY sort_key, position LIMIT %(n)s FOR UPDATE SKIP LOCKED
);

-- name: unhold_run
UPDATE tasks t SET held = CASE WHEN r.state = 'paused' THEN 'paused' END,
                   wait_reason = CASE WHEN r.state = 'paused' THEN 'run paused' END
FROM runs r
WHERE r.run_id = t.run_id AND (t.run_id, t.name) IN (
    SELECT run_id, name FROM tasks
    WHERE run_id = %(run_id)s AND held = 'run' AND state = 'ready'
    ORDER BY sort_key, position LIMIT %(n)s FOR UPDATE SKIP LOCKED
);

-- name: inputs
-- What claimed attempts get from their dependencies: results, and errors for all_done tasks.
SELECT t.run_id, t.name, t.state, t.result, t.error
FROM tasks t
JOIN (SELECT unnest(%(runs)s::text[]) AS run_id, unnest(%(names)s::text[]) AS name) v
  ON t.run_id = v.run_id AND t.name = v.name;

-- name: run_specs
SELECT run_id, spec, meta FROM runs WHERE run_id = ANY(%(runs)s);

-- name: my_running
-- A worker's heartbeat renews its row in `workers` (one row, no task row locks: a renewal never
-- waits on a completion); this read tells it which attempts it still owns and which to stop.
SELECT run_id, name, attempts, cancel_reason FROM tasks
WHERE owner = %(owner)s AND state = 'running';

-- name: set_task_detail
-- What a running attempt reports about itself (its process group, what it waits for).
-- A running attempt with a wait reason waits on a person (an approval): it holds no slot.
UPDATE tasks SET pid = coalesce(%(pid)s, pid), wait_reason = %(wait_reason)s
WHERE run_id = %(run_id)s AND name = %(name)s AND attempts = %(attempt)s
  AND owner = %(owner)s AND state = 'running'
RETURNING concurrency_key, key_limit, run_limit;

-- name: expired_leases
-- A running task's lease has expired when the lease taken at its claim has passed and its
-- worker has not heartbeat within its lease time since (or is gone). Time the database was
-- down does not count: after a restart, workers get a full lease time to heartbeat again.
SELECT DISTINCT t.run_id FROM tasks t LEFT JOIN workers w ON w.owner = t.owner
WHERE t.state = 'running' AND t.owner IS NOT NULL AND t.lease_until < %(now)s
  AND (w.owner IS NULL OR greatest(w.heartbeat_at,
        extract(epoch FROM pg_postmaster_start_time())) + w.lease_ttl < %(now)s)
LIMIT 100;

-- name: expired_in_run
SELECT t.name FROM tasks t LEFT JOIN workers w ON w.owner = t.owner
WHERE t.run_id = %(run_id)s AND t.state = 'running' AND t.owner IS NOT NULL
  AND t.lease_until < %(now)s
  AND (w.owner IS NULL OR greatest(w.heartbeat_at,
        extract(epoch FROM pg_postmaster_start_time())) + w.lease_ttl < %(now)s);

-- name: due_runs
SELECT DISTINCT run_id FROM tasks WHERE due_at <= %(now)s LIMIT 100;

-- name: due_in_run
SELECT name FROM tasks WHERE run_id = %(run_id)s AND due_at <= %(now)s;

-- name: requested_runs
SELECT run_id FROM runs WHERE request IS NOT NULL AND mode IS NOT NULL LIMIT 100;

-- name: overdue_runs
SELECT run_id FROM runs
WHERE deadline < %(now)s AND mode IS NOT NULL AND state IN ('running', 'paused') LIMIT 100;

-- name: upsert_worker
INSERT INTO workers (name, owner, host, pid, started_at, heartbeat_at, concurrency,
                     lease_ttl, running, state)
VALUES (%(name)s, %(owner)s, %(host)s, %(pid)s, %(now)s, %(now)s, %(concurrency)s,
        %(ttl)s, %(running)s, %(state)s)
ON CONFLICT (owner) DO UPDATE SET name = excluded.name, host = excluded.host,
    pid = excluded.pid, heartbeat_at = excluded.heartbeat_at, concurrency = excluded.concurrency,
    lease_ttl = excluded.lease_ttl,
    running = excluded.running, state = excluded.state;

-- name: remove_worker
DELETE FROM workers WHERE owner = %(owner)s;

-- name: list_workers
-- Live: heard from within half its lease time. It heartbeats every third of it, so a late
-- heartbeat is forgiven and a missed one is not: a killed worker drops out of the list (state
-- `lost`, shown with `all`) well before its attempts' leases expire and they are taken over.
-- Tasks running: counted now (the worker's own count is as old as its last heartbeat).
SELECT name, host, pid, started_at, %(now)s - heartbeat_at, concurrency,
       (SELECT count(*) FROM tasks t WHERE t.owner = workers.owner AND t.state = 'running'),
       CASE WHEN heartbeat_at >= %(now)s - lease_ttl / 2 THEN state ELSE 'lost' END
FROM workers WHERE %(all)s OR heartbeat_at >= %(now)s - lease_ttl / 2
ORDER BY name, started_at;

-- name: prune_workers
DELETE FROM workers WHERE heartbeat_at < %(before)s;

-- name: events_window
-- Events of every run from a low-water mark on (the API server feeds its metrics from them
-- when workers execute the runs). Ids commit out of order across runs, so callers re-read a
-- window and skip the ids they have seen.
SELECT id, run_id, task, from_state, to_state, attempt, at, detail
FROM events WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: max_event_id
SELECT coalesce(max(id), 0) FROM events;
