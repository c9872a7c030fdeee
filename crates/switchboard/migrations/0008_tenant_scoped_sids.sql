-- Twilio ids are unique within a tenant, not across tenants: a tenant can sign webhooks for
-- its own numbers naming any id, and must never reach another tenant's rows through it.
-- Webhooks are kept once: a replayed callback finds its key taken. Calls count the
-- documents served (turns), so a replayed step of a flow is answered as before.
-- (SQLite cannot drop a column constraint: the three tables are rebuilt.)

CREATE TABLE messages_new (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    direction TEXT NOT NULL,
    number_id TEXT REFERENCES numbers (id),
    conversation_id TEXT REFERENCES conversations (id),
    contact_id TEXT REFERENCES contacts (id),
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    media_urls TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    twilio_sid TEXT,
    encoding TEXT NOT NULL,
    segments BIGINT NOT NULL,
    price_estimate TEXT,
    price TEXT,
    error_code TEXT,
    error_message TEXT,
    template_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_until BIGINT,
    valid_until BIGINT,
    submitted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    delivered_at BIGINT,
    UNIQUE (tenant_id, idempotency_key),
    UNIQUE (tenant_id, twilio_sid)
);
INSERT INTO messages_new SELECT id, tenant_id, direction, number_id, conversation_id, contact_id, from_number,
    to_number, body, media_urls, status, status_rank, twilio_sid, encoding, segments, price_estimate, price,
    error_code, error_message, template_id, idempotency_key, request_hash, attempts, next_attempt_at,
    lease_until, valid_until, submitted_at, created_at, updated_at, sent_at, delivered_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_history ON messages (tenant_id, created_at, id);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_to ON messages (tenant_id, to_number, created_at);
CREATE INDEX messages_from ON messages (tenant_id, from_number, created_at);
CREATE INDEX messages_sid ON messages (twilio_sid);

CREATE TABLE calls_new (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    number_id TEXT REFERENCES numbers (id),
    direction TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    twilio_sid TEXT,
    flow_id TEXT,
    path TEXT NOT NULL DEFAULT '[]',
    ringing_at BIGINT,
    answered_at BIGINT,
    ended_at BIGINT,
    duration BIGINT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    flow_override TEXT,
    request TEXT,
    metadata TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_until BIGINT,
    submitted_at BIGINT,
    turns BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, twilio_sid)
);
INSERT INTO calls_new SELECT id, tenant_id, number_id, direction, from_number, to_number, status, status_rank,
    twilio_sid, flow_id, path, ringing_at, answered_at, ended_at, duration, error_code, error_message,
    created_at, updated_at, flow_override, request, metadata, idempotency_key, request_hash, attempts,
    next_attempt_at, lease_until, submitted_at, 0 FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_history ON calls (tenant_id, created_at, id);
CREATE INDEX calls_from ON calls (tenant_id, from_number, created_at);
CREATE INDEX calls_to ON calls (tenant_id, to_number, created_at);
CREATE UNIQUE INDEX calls_idempotency ON calls (tenant_id, idempotency_key);
CREATE INDEX calls_due ON calls (status, next_attempt_at);
CREATE INDEX calls_sid ON calls (twilio_sid);

CREATE TABLE recordings_new (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    call_id TEXT NOT NULL REFERENCES calls (id),
    twilio_sid TEXT NOT NULL,
    source_url TEXT NOT NULL,
    duration BIGINT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    storage_key TEXT,
    content_type TEXT,
    size BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, twilio_sid)
);
INSERT INTO recordings_new SELECT id, tenant_id, call_id, twilio_sid, source_url, duration, kind, status,
    storage_key, content_type, size, attempts, next_attempt_at, error, created_at FROM recordings;
DROP TABLE recordings;
ALTER TABLE recordings_new RENAME TO recordings;
CREATE INDEX recordings_due ON recordings (status, next_attempt_at);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_sid ON recordings (twilio_sid);

CREATE TABLE twilio_transcriptions_new (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    recording_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    text TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, recording_sid)
);
INSERT INTO twilio_transcriptions_new SELECT tenant_id, recording_sid, status, text, created_at FROM twilio_transcriptions;
DROP TABLE twilio_transcriptions;
ALTER TABLE twilio_transcriptions_new RENAME TO twilio_transcriptions;

ALTER TABLE message_events ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX message_events_once ON message_events (message_id, once_key);
ALTER TABLE call_events ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX call_events_once ON call_events (call_id, once_key);
