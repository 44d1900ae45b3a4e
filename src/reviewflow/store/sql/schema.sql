-- The PostgreSQL schema in one go, for an empty database.
-- version: 2
-- It must equal migrations 0001..0002 applied one by one (tests/integration/
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
    request      text
);
CREATE INDEX runs_created ON runs (created_at);

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
    PRIMARY KEY (run_id, name)
);
-- Ready tasks, for workers claiming them from the database (... FOR UPDATE SKIP LOCKED).
CREATE INDEX tasks_ready ON tasks (ready_at) WHERE state = 'ready';

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
