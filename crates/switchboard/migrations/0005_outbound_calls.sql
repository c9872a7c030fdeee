-- Outbound calls: the call row is its own dispatch job, as messages are.
ALTER TABLE calls ADD COLUMN request TEXT;
ALTER TABLE calls ADD COLUMN metadata TEXT;
ALTER TABLE calls ADD COLUMN idempotency_key TEXT;
ALTER TABLE calls ADD COLUMN request_hash TEXT;
ALTER TABLE calls ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE calls ADD COLUMN lease_until BIGINT;
ALTER TABLE calls ADD COLUMN submitted_at BIGINT;
CREATE UNIQUE INDEX calls_idempotency ON calls (tenant_id, idempotency_key);
CREATE INDEX calls_due ON calls (status, next_attempt_at);
