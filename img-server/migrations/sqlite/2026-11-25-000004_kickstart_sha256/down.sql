DROP INDEX jobs_reuse;
ALTER TABLE jobs DROP COLUMN kickstart_sha256;
