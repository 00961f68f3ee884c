-- Jobs: one row per job, for its whole life. Times are unix seconds (REAL).
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT 'default',
    status TEXT NOT NULL CHECK (status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    timeout REAL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    worker_id TEXT,
    result TEXT,
    error TEXT
);

-- The claim query walks this index in order: highest priority, then earliest run_at, then id.
CREATE INDEX jobs_waiting ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'scheduled');

CREATE INDEX jobs_waiting_any_queue ON jobs (priority DESC, run_at, id)
    WHERE status IN ('queued', 'scheduled');

-- Recovery looks up the jobs a worker holds.
CREATE INDEX jobs_running ON jobs (worker_id) WHERE status = 'running';

-- Status summaries and purges scan by status.
CREATE INDEX jobs_status ON jobs (status, queue);
