-- A claim for every queue takes the best queued jobs in one walk, however many queues there
-- are: these indexes hold the queued jobs in claim order across queues. jobs_queued (queue
-- first) stays for workers of named queues. Before, a claim walked jobs_queued queue by
-- queue, one query per queue with waiting jobs, inside the write lock: 5,000 queues made
-- every claim 5,000 queries.
CREATE INDEX jobs_queued_in_order ON jobs (priority DESC, run_at, id) WHERE status = 'queued';

-- The same for shell commands alone (a worker without an app of tasks): only they enter it.
CREATE INDEX jobs_queued_commands_in_order ON jobs (priority DESC, run_at, id)
    WHERE status = 'queued' AND task = 'jobq.shell';
