-- Which process a worker is, beyond its pid: the boot it runs in and its start time (from
-- /proc). On its own host a worker whose process still runs is alive, however long a locked
-- or full database holds up its heartbeat; a pid given to a new process does not pass.
ALTER TABLE workers ADD COLUMN process_start TEXT;
