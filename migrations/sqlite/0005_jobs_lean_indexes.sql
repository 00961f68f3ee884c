-- Fewer pages written per job. Each index a row enters costs one more page per transaction,
-- and AUTOINCREMENT one more (sqlite_sequence); submitting a job wrote six pages, now two.
-- * No AUTOINCREMENT: ids still never repeat, because purge never deletes the job with the
--   highest id (SQLite gives a new row the highest id + 1).
-- * A job enters one index per state: jobs_queued (claim order, per queue; a worker on every
--   queue walks it queue by queue), jobs_scheduled (by time: a scheduled job is made queued
--   by the claim that finds it due), jobs_running (by worker), jobs_finished (counts and
--   purge). jobs_waiting_any_queue, jobs_status and jobs_due are gone.
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT 'default',
    -- 'deferred': waiting for other jobs to succeed (0006 adds what it needs).
    status TEXT NOT NULL CHECK (status IN ('deferred', 'queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
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

INSERT INTO jobs_new SELECT id, task, queue, status, priority, args, kwargs, attempts,
    max_attempts, claims, timeout, run_at, created_at, started_at, finished_at, worker_id,
    result, error
FROM jobs ORDER BY id;

-- If the newest jobs were purged before this migration, AUTOINCREMENT remembered the highest
-- id handed out; one cancelled stand-in row keeps that id taken.
INSERT INTO jobs_new (id, task, queue, status, run_at, created_at, finished_at, error)
SELECT seq, 'jobq.purged', 'default', 'cancelled', 0, 0, 0,
    '{"type": "Purged", "message": "stands in for purged jobs so that their ids are never reused", "traceback": null}'
FROM sqlite_sequence
WHERE name = 'jobs' AND seq > (SELECT COALESCE(MAX(id), 0) FROM jobs);

DROP TABLE jobs;

ALTER TABLE jobs_new RENAME TO jobs;

CREATE INDEX jobs_queued ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';

CREATE INDEX jobs_scheduled ON jobs (run_at, queue) WHERE status = 'scheduled';

CREATE INDEX jobs_running ON jobs (worker_id, queue) WHERE status = 'running';

CREATE INDEX jobs_finished ON jobs (status, queue, finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
