-- Workers: runs executed by `reviewflow worker` processes that claim single tasks.
-- A run with mode 'workers' has no owner process; its tasks carry their own leases
-- (owner, lease_until on the database clock) and the DAG advances in the transaction that
-- records a completion (remaining = dependencies not yet satisfied).
ALTER TABLE runs ADD COLUMN mode text;
ALTER TABLE runs ADD COLUMN outcome text;
ALTER TABLE runs ADD COLUMN open_main integer;
ALTER TABLE runs ADD COLUMN open_hooks integer;
ALTER TABLE runs ADD COLUMN hooks_started boolean NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN deadline double precision;
ALTER TABLE tasks ADD COLUMN hook boolean NOT NULL DEFAULT false;
ALTER TABLE tasks ADD COLUMN remaining integer;
ALTER TABLE tasks ADD COLUMN sort_key double precision;
ALTER TABLE tasks ADD COLUMN concurrency_key text;
ALTER TABLE tasks ADD COLUMN key_limit integer;
ALTER TABLE tasks ADD COLUMN run_limit integer;
ALTER TABLE tasks ADD COLUMN held text;
ALTER TABLE tasks ADD COLUMN due_at double precision;
ALTER TABLE tasks ADD COLUMN owner text;
ALTER TABLE tasks ADD COLUMN lease_until double precision;
ALTER TABLE tasks ADD COLUMN lost_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN cancel_reason text;
DROP INDEX tasks_ready;
-- The claim: ready, not held back by a limit or a pause, best sort key first.
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
CREATE INDEX runs_requested ON runs (run_id) WHERE request IS NOT NULL AND mode IS NOT NULL;
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL;

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
