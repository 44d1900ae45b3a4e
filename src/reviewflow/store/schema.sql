-- reviewflow schema, version 1. Applied with CREATE ... IF NOT EXISTS at every open.
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    state        TEXT NOT NULL,
    spec         TEXT NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}',
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    error        TEXT,
    owner        TEXT,
    lease_until  REAL,
    request      TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);

-- The spec of a run, apart from its row: every batch of the owner updates the run row (lease,
-- state), and SQLite rewrites a whole row on UPDATE, so a spec kept there (~440 bytes a task)
-- made each flush of a 100k-task run write 44 MB. New runs leave runs.spec empty, runs written
-- before this table keep their spec there (readers take run_specs.spec first).
CREATE TABLE IF NOT EXISTS run_specs (
    run_id  TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
    spec    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tasks (
    run_id          TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    position        INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    ready_at        REAL,
    started_at      REAL,
    finished_at     REAL,
    next_attempt_at REAL,
    result          TEXT,
    error           TEXT,
    errors          TEXT,
    wait_reason     TEXT,
    pid             INTEGER,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task        TEXT,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    attempt     INTEGER,
    at          REAL NOT NULL,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- A person's decision on an `approval` task. Written by `reviewflow approve|reject` from any
-- process (the run's executor may have exited), read by the approval task when it (re)starts.
CREATE TABLE IF NOT EXISTS approvals (
    run_id        TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task          TEXT NOT NULL,
    requested_at  REAL,
    decision      TEXT CHECK (decision IN ('approved', 'rejected')),
    approver      TEXT,
    comment       TEXT,
    decided_at    REAL,
    PRIMARY KEY (run_id, task)
) WITHOUT ROWID;

-- The outbox (store/outbox.py): side effects written with the state change that causes them,
-- delivered afterwards by any process. Sources are what a run subscribed to (e.g. `notify`).
CREATE TABLE IF NOT EXISTS outbox_sources (
    run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    source  TEXT NOT NULL,
    config  TEXT NOT NULL,
    PRIMARY KEY (run_id, source)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL UNIQUE,
    delivery_id  TEXT NOT NULL,
    run_id       TEXT,
    payload      TEXT NOT NULL,
    target       TEXT,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    next_at      REAL NOT NULL,
    expires_at   REAL NOT NULL,
    lease_owner  TEXT,
    lease_until  REAL,
    delivered_at REAL,
    last_error   TEXT,
    history      TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_run ON outbox (run_id);

-- Schedules (reviewflow.schedules): when runs of a stored workflow start by themselves. A slot's
-- run has an id derived from the schedule and the slot, so the runs table's primary key makes a
-- slot fire at most once whoever fires it, and the lease spreads the work among schedulers.
CREATE TABLE IF NOT EXISTS schedules (
    id          text PRIMARY KEY,
    workflow    text NOT NULL,
    spec        text NOT NULL,
    cadence     text NOT NULL,
    paused      integer NOT NULL DEFAULT 0,
    next_slot   REAL NOT NULL,
    next_fire   REAL NOT NULL,
    last_slot   REAL,
    last_run    text,
    fired       integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until REAL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    last_error  text
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_fire) WHERE paused = 0;
