-- The PostgreSQL schema in one go, for an empty database.
-- version: 6
-- It must equal migrations 0001..0006 applied one by one (tests/integration/
-- test_postgres_store.py diffs the two): add a migration AND change this file, then bump the
-- version above. Column order matters (ALTER TABLE ... ADD COLUMN appends).
CREATE TABLE runs (
    run_id       text PRIMARY KEY,
    workflow     text NOT NULL,
    state        text NOT NULL,
    spec         text NOT NULL,
    meta         json NOT NULL DEFAULT '{}',
    created_at   double precision NOT NULL,
    started_at   double precision,
    finished_at  double precision,
    error        text,
    owner        text,
    lease_until  double precision,
    request      text,
    mode         text,
    outcome      text,
    open_main    integer,
    open_hooks   integer,
    hooks_started boolean NOT NULL DEFAULT false,
    deadline     double precision
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_requested ON runs (run_id) WHERE request IS NOT NULL AND mode IS NOT NULL;
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL;

CREATE TABLE tasks (
    run_id          text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name            text NOT NULL,
    position        integer NOT NULL,
    state           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    ready_at        double precision,
    started_at      double precision,
    finished_at     double precision,
    next_attempt_at double precision,
    result          text,
    error           text,
    errors          text,
    wait_reason     text,
    pid             integer,
    hook            boolean NOT NULL DEFAULT false,
    remaining       integer,
    sort_key        double precision,
    concurrency_key text,
    key_limit       integer,
    run_limit       integer,
    held            text,
    due_at          double precision,
    owner           text,
    lease_until     double precision,
    lost_attempts   integer NOT NULL DEFAULT 0,
    cancel_reason   text,
    PRIMARY KEY (run_id, name)
);
-- Claims by workers (... FOR UPDATE SKIP LOCKED): ready, not held back, best sort key first.
-- Only tasks of workers runs have a sort key: a run one process executes (embedded) is its.
CREATE INDEX tasks_claim ON tasks (sort_key, position)
    WHERE state = 'ready' AND held IS NULL AND sort_key IS NOT NULL;
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE state = 'running' AND owner IS NOT NULL;
CREATE INDEX tasks_due ON tasks (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX tasks_key_running ON tasks (concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX tasks_run_running ON tasks (run_id) WHERE state = 'running';
CREATE INDEX tasks_owner ON tasks (owner) WHERE state = 'running';
CREATE INDEX tasks_held_key ON tasks (concurrency_key, sort_key, position) WHERE held = 'key';
CREATE INDEX tasks_held_run ON tasks (run_id, sort_key, position) WHERE held IN ('run', 'paused');

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task        text,
    from_state  text,
    to_state    text NOT NULL,
    attempt     integer,
    at          double precision NOT NULL,
    detail      text
);
CREATE INDEX events_run ON events (run_id, id);

CREATE TABLE approvals (
    run_id        text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task          text NOT NULL,
    requested_at  double precision,
    decision      text CHECK (decision IN ('approved', 'rejected')),
    approver      text,
    comment       text,
    decided_at    double precision,
    PRIMARY KEY (run_id, task)
);

-- One row per worker process (owner: host:pid:random), named for people (`--name`).
CREATE TABLE workers (
    owner        text PRIMARY KEY,
    name         text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    concurrency  integer NOT NULL,
    lease_ttl    double precision NOT NULL,
    running      integer NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'running'
);

-- The outbox (store/outbox.py): side effects written with the state change that causes them,
-- delivered afterwards by any process. Sources are what a run subscribed to (e.g. `notify`).
CREATE TABLE outbox_sources (
    run_id  text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    source  text NOT NULL,
    config  text NOT NULL,
    PRIMARY KEY (run_id, source)
);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    dedupe_key   text NOT NULL UNIQUE,
    delivery_id  text NOT NULL,
    run_id       text,
    payload      text NOT NULL,
    target       text,
    state        text NOT NULL DEFAULT 'pending',
    attempts     integer NOT NULL DEFAULT 0,
    created_at   double precision NOT NULL,
    next_at      double precision NOT NULL,
    expires_at   double precision NOT NULL,
    lease_owner  text,
    lease_until  double precision,
    delivered_at double precision,
    last_error   text,
    history      text NOT NULL DEFAULT '[]'
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'pending';
CREATE INDEX outbox_run ON outbox (run_id);

-- Schedules (reviewflow.schedules): when runs of a stored workflow start by themselves. A slot's
-- run has an id derived from the schedule and the slot, so the runs table's primary key makes a
-- slot fire at most once whoever fires it, and the lease spreads the work among schedulers.
CREATE TABLE schedules (
    id          text PRIMARY KEY,
    workflow    text NOT NULL,
    spec        text NOT NULL,
    cadence     text NOT NULL,
    paused      integer NOT NULL DEFAULT 0,
    next_slot   double precision NOT NULL,
    next_fire   double precision NOT NULL,
    last_slot   double precision,
    last_run    text,
    fired       integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until double precision,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    last_error  text
);
CREATE INDEX schedules_due ON schedules (next_fire) WHERE paused = 0;
