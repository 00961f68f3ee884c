-- What jobq needs as a local task runner: shell-command jobs, dependencies, cancelling a
-- running job.

-- A worker without an app of tasks claims shell commands only. Only those jobs enter this
-- index, so no other job pays for it, and the worker never walks past other tasks' jobs.
CREATE INDEX jobs_queued_commands ON jobs (queue, priority DESC, run_at, id)
    WHERE status = 'queued' AND task = 'jobq.shell';

-- `jobq cancel` of a running job: when it was asked. The worker running it sees the mark,
-- stops the job and records it cancelled; a reaped worker's marked jobs end cancelled too.
ALTER TABLE jobs ADD COLUMN cancel_requested REAL;

-- `--after`: job_id waits (status 'deferred') until after_id has succeeded. A job can only
-- wait for jobs that exist when it is submitted, so no cycle can form.
CREATE TABLE job_dependencies (
    after_id INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (after_id, job_id)
) WITHOUT ROWID;

CREATE INDEX job_dependencies_job ON job_dependencies (job_id);

CREATE INDEX jobs_deferred ON jobs (queue) WHERE status = 'deferred';
