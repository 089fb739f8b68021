-- Jobs: the original ImageJob fields (email, filename → name, logfile, task id, image file →
-- image_url, created, error, type → imagetype, status → state), the later original's (arch,
-- overlay, extra repos, tokenmap, kickstart, name, pinned, tags) and a service's own
-- (kind, per-state times, worker, attempts, lease, outbox mark). Times are Unix milliseconds.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    imagetype TEXT NOT NULL,
    arch TEXT NOT NULL,
    kickstart TEXT NOT NULL,
    template TEXT,
    platform TEXT,
    overlay TEXT NOT NULL,
    extra_repos TEXT NOT NULL,
    tokenmap TEXT NOT NULL,
    tags TEXT NOT NULL,
    pinned BOOLEAN NOT NULL DEFAULT FALSE,
    error TEXT,
    logfile TEXT,
    image_url TEXT,
    task_id TEXT,
    worker_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until BIGINT,
    published_at BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_by_state ON jobs (state, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at);

CREATE TABLE artifacts (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);

-- API tokens, stored as SHA-256 of the secret.
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
