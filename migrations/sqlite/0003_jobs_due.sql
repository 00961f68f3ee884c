-- Waiting jobs by time: the earliest run_at (how long an idle worker may sleep) and the count
-- of jobs due now (burst mode) are index lookups, however many jobs wait.
CREATE INDEX jobs_due ON jobs (run_at) WHERE status IN ('queued', 'scheduled');
