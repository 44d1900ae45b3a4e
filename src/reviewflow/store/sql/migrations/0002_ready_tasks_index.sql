-- Ready tasks, for workers that will claim them straight from the database
-- (SELECT ... WHERE state = 'ready' ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED): a partial
-- index stays as small as the ready set, however many finished tasks the table keeps.
CREATE INDEX tasks_ready ON tasks (ready_at) WHERE state = 'ready';
