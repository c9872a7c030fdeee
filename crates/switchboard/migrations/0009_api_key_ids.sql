-- API keys are known by their id (`key_…`), never by characters of the key itself.
ALTER TABLE api_keys DROP COLUMN prefix;
