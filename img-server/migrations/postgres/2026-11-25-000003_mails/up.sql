-- Notification mail, queued in the same transaction as the job change it reports and sent
-- by a background task (retried with backoff while the SMTP server is away). Times are Unix
-- milliseconds.
CREATE TABLE mails (
    id TEXT PRIMARY KEY NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- started | done | failed
    kind TEXT NOT NULL,
    recipients TEXT NOT NULL,
    -- pending | sent | failed | skipped
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX mails_due ON mails (state, next_try_at);
CREATE INDEX mails_by_job ON mails (job_id);
