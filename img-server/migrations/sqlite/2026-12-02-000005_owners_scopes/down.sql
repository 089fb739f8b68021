DROP INDEX jobs_owner;
ALTER TABLE jobs DROP COLUMN builder_attempt;
ALTER TABLE jobs DROP COLUMN builder;
ALTER TABLE jobs DROP COLUMN owner;
ALTER TABLE api_tokens DROP COLUMN scope;
ALTER TABLE api_tokens DROP COLUMN user_name;
