-- The tables of the SQLite schema (store/schema.sql), with PostgreSQL types. Times are the
-- engine's time.time() floats (double precision), JSON documents the engine produces stay text
-- (returned byte for byte), run meta is `json` (validated, key order kept).
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
