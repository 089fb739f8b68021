-- sha256 (hex) of the kickstart as built, so a client can find a finished job that built the
-- same kickstart (GET /api/v1/jobs?kickstart_sha256=…, BOSS's request_image get_or_create).
ALTER TABLE jobs ADD COLUMN kickstart_sha256 TEXT;
UPDATE jobs SET kickstart_sha256 = encode(sha256(convert_to(kickstart, 'UTF8')), 'hex');
CREATE INDEX jobs_reuse ON jobs (kickstart_sha256, state);
