-- Phone verification (one-time codes). Built-in codes are never stored: a random salt from
-- which the code is derived under the tenant's key, and an HMAC of the code to check against.
-- The texts and calls that carry a code name their verification and hold it masked; the code
-- is put in only when Twilio is asked to send it.

CREATE TABLE verifications (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    to_number TEXT NOT NULL,
    channel TEXT NOT NULL,
    locale TEXT NOT NULL,
    app_name TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    code_length BIGINT NOT NULL,
    salt TEXT,
    code_hash TEXT,
    twilio_sid TEXT,
    service_sid TEXT,
    send_attempts BIGINT NOT NULL DEFAULT 0,
    check_attempts BIGINT NOT NULL DEFAULT 0,
    message_id TEXT,
    call_id TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, twilio_sid)
);
CREATE INDEX verifications_to ON verifications (tenant_id, to_number, created_at);
-- One pending verification per number and tenant.
CREATE UNIQUE INDEX verifications_pending ON verifications (tenant_id, to_number) WHERE status = 'pending';

-- Every attempt to send a code, sent or blocked, for the anti-pumping limits.
CREATE TABLE verification_attempts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    verification_id TEXT,
    to_number TEXT NOT NULL,
    prefix TEXT NOT NULL,
    country TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX verification_attempts_to ON verification_attempts (tenant_id, to_number, created_at);
CREATE INDEX verification_attempts_prefix ON verification_attempts (tenant_id, prefix, created_at);
CREATE INDEX verification_attempts_ip ON verification_attempts (tenant_id, client_ip, created_at);
CREATE INDEX verification_attempts_country ON verification_attempts (tenant_id, country, created_at);
CREATE INDEX verification_attempts_time ON verification_attempts (tenant_id, created_at);

CREATE TABLE verify_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE messages ADD COLUMN verification_id TEXT;
ALTER TABLE calls ADD COLUMN verification_id TEXT;
