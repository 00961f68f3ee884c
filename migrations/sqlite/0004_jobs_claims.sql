-- Two fixes to the jobs table, which SQLite can only make by rebuilding it:
-- * AUTOINCREMENT: an id is never used twice, even after the newest jobs are purged, so a
--   stale id or Job handle can never point at another job.
-- * claims: how many times the job was ever claimed; never reset (attempts is reset by a
--   retry and refunded by a clean stop). An outcome is fenced on it, so the late outcome of
--   an earlier claim can never land on a later one, whoever holds it.
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT 'default',
    status TEXT NOT NULL CHECK (status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    claims INTEGER NOT NULL DEFAULT 0,
    timeout REAL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    worker_id TEXT,
    result TEXT,
    error TEXT
);

INSERT INTO jobs_new (id, task, queue, status, priority, args, kwargs, attempts, max_attempts,
    claims, timeout, run_at, created_at, started_at, finished_at, worker_id, result, error)
SELECT id, task, queue, status, priority, args, kwargs, attempts, max_attempts,
    attempts, timeout, run_at, created_at, started_at, finished_at, worker_id, result, error
FROM jobs;

DROP TABLE jobs;

ALTER TABLE jobs_new RENAME TO jobs;

CREATE INDEX jobs_waiting ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'scheduled');

CREATE INDEX jobs_waiting_any_queue ON jobs (priority DESC, run_at, id)
    WHERE status IN ('queued', 'scheduled');

CREATE INDEX jobs_running ON jobs (worker_id) WHERE status = 'running';

CREATE INDEX jobs_status ON jobs (status, queue);

CREATE INDEX jobs_due ON jobs (run_at) WHERE status IN ('queued', 'scheduled');
