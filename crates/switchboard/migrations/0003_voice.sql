-- Voice: call flows (attached to numbers), calls and their raw events.

CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

ALTER TABLE numbers ADD COLUMN flow_id TEXT REFERENCES flows (id);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    number_id TEXT REFERENCES numbers (id),
    direction TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    twilio_sid TEXT UNIQUE,
    flow_id TEXT,
    path TEXT NOT NULL DEFAULT '[]',
    ringing_at BIGINT,
    answered_at BIGINT,
    ended_at BIGINT,
    duration BIGINT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX calls_history ON calls (tenant_id, created_at, id);
CREATE INDEX calls_from ON calls (tenant_id, from_number, created_at);
CREATE INDEX calls_to ON calls (tenant_id, to_number, created_at);

CREATE TABLE call_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL REFERENCES calls (id),
    kind TEXT NOT NULL,
    status TEXT,
    applied BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX call_events_call ON call_events (call_id, created_at);

-- Steps an app added during a call (ask_app), merged over the call's flow.
ALTER TABLE calls ADD COLUMN flow_override TEXT;
