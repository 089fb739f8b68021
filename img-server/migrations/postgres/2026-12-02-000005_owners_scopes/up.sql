-- Who may do what: every token names a user and has a scope; tokens made before scopes keep
-- their full rights (admin) and are their own user. Every job records its owner (the user
-- of the token that submitted it; NULL: submitted anonymously on an open server) and the
-- worker token that claimed its current attempt (uploads are taken only from that one).
ALTER TABLE api_tokens ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
UPDATE api_tokens SET user_name = name;
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN builder TEXT;
ALTER TABLE jobs ADD COLUMN builder_attempt INTEGER;
CREATE INDEX jobs_owner ON jobs (owner, created_at);
