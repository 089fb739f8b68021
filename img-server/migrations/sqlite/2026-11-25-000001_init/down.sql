DROP TABLE api_tokens;
DROP TABLE artifacts;
DROP TABLE jobs;
