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
