-- How often a job was taken back from a worker that stopped sending heartbeats: after
-- `worker.max_retries` of those it fails instead of being queued again.
ALTER TABLE jobs ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
