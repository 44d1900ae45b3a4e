-- Why a schedule's last slot could not fire (its stored workflow no longer validates, its run
-- could not be stored): shown by `reviewflow schedule list`, cleared by the next slot that fires.
ALTER TABLE schedules ADD COLUMN last_error text;
