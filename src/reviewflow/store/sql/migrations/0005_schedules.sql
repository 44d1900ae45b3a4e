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
    updated_at  double precision NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire) WHERE paused = 0;
