-- Tenants, their keys and numbers; contacts, conversations, templates; messages (each row is
-- also its own dispatch job), their events and media; the opt-out ledger.
-- Times are milliseconds since the Unix epoch; JSON is stored as text; booleans as 0/1.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    account_sid TEXT,
    auth_token_enc TEXT,
    default_region TEXT NOT NULL DEFAULT 'US',
    created_at BIGINT NOT NULL
);
CREATE INDEX tenants_account ON tenants (account_sid);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE numbers (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    phone_number TEXT NOT NULL UNIQUE,
    twilio_sid TEXT,
    segments_per_second DOUBLE PRECISION NOT NULL,
    next_slot_at BIGINT NOT NULL DEFAULT 0,
    auto_reply TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX numbers_tenant ON numbers (tenant_id);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    phone TEXT NOT NULL,
    name TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, phone)
);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    number_id TEXT NOT NULL REFERENCES numbers (id),
    last_message_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, contact_id, number_id)
);
CREATE INDEX conversations_recent ON conversations (tenant_id, last_message_at, id);

CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE messages (
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
    twilio_sid TEXT UNIQUE,
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
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_history ON messages (tenant_id, created_at, id);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_to ON messages (tenant_id, to_number, created_at);
CREATE INDEX messages_from ON messages (tenant_id, from_number, created_at);

CREATE TABLE message_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages (id),
    kind TEXT NOT NULL,
    status TEXT,
    applied BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_events_message ON message_events (message_id, created_at);

CREATE TABLE media (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    message_id TEXT NOT NULL REFERENCES messages (id),
    position BIGINT NOT NULL,
    source_url TEXT NOT NULL,
    content_type TEXT,
    storage_key TEXT,
    size BIGINT,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_until BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX media_due ON media (status, next_attempt_at);
CREATE INDEX media_message ON media (message_id, position);

CREATE TABLE opt_outs (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    sender TEXT NOT NULL,
    phone TEXT NOT NULL,
    opted_out BIGINT NOT NULL,
    keyword TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sender, phone)
);
