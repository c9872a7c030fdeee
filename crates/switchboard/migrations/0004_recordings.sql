-- Call recordings (downloaded into storage) and voicemails with their transcriptions.

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    call_id TEXT NOT NULL REFERENCES calls (id),
    twilio_sid TEXT NOT NULL UNIQUE,
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
    created_at BIGINT NOT NULL
);
CREATE INDEX recordings_due ON recordings (status, next_attempt_at);
CREATE INDEX recordings_call ON recordings (call_id);

CREATE TABLE voicemails (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    call_id TEXT NOT NULL REFERENCES calls (id),
    recording_id TEXT NOT NULL UNIQUE REFERENCES recordings (id),
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    status TEXT NOT NULL,
    transcription_status TEXT NOT NULL,
    transcription_source TEXT,
    transcription_text TEXT,
    transcription_error TEXT,
    transcription_attempts BIGINT NOT NULL DEFAULT 0,
    transcription_next_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX voicemails_recent ON voicemails (tenant_id, created_at, id);
CREATE INDEX voicemails_transcribe ON voicemails (transcription_status, transcription_next_at);

-- Twilio's transcriptions by RecordingSid: they may arrive before the voicemail they belong to.
CREATE TABLE twilio_transcriptions (
    recording_sid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    status TEXT NOT NULL,
    text TEXT,
    created_at BIGINT NOT NULL
);
