-- Workers: one row per live worker process (and per supervisor), kept fresh by heartbeats.
-- A job's lease is its worker's heartbeat: when the heartbeat is older than the lease, the
-- worker is presumed dead and its running jobs are queued again.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'supervisor')),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    supervisor_pid INTEGER,
    queues TEXT,
    threads INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);

CREATE INDEX workers_heartbeat ON workers (heartbeat_at);
