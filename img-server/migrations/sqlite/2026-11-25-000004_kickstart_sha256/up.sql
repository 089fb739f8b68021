-- sha256 (hex) of the kickstart as built, so a client can find a finished job that built the
-- same kickstart (GET /api/v1/jobs?kickstart_sha256=…, BOSS's request_image get_or_create).
-- SQLite cannot hash: rows from before this migration keep NULL and are never matched.
ALTER TABLE jobs ADD COLUMN kickstart_sha256 TEXT;
CREATE INDEX jobs_reuse ON jobs (kickstart_sha256, state);
