-- See 0008_tenant_scoped_sids.sql; PostgreSQL changes the constraints in place.

ALTER TABLE messages DROP CONSTRAINT messages_twilio_sid_key;
ALTER TABLE messages ADD CONSTRAINT messages_tenant_sid UNIQUE (tenant_id, twilio_sid);
CREATE INDEX messages_sid ON messages (twilio_sid);

ALTER TABLE calls DROP CONSTRAINT calls_twilio_sid_key;
ALTER TABLE calls ADD CONSTRAINT calls_tenant_sid UNIQUE (tenant_id, twilio_sid);
CREATE INDEX calls_sid ON calls (twilio_sid);
ALTER TABLE calls ADD COLUMN turns BIGINT NOT NULL DEFAULT 0;

ALTER TABLE recordings DROP CONSTRAINT recordings_twilio_sid_key;
ALTER TABLE recordings ADD CONSTRAINT recordings_tenant_sid UNIQUE (tenant_id, twilio_sid);
CREATE INDEX recordings_sid ON recordings (twilio_sid);

ALTER TABLE twilio_transcriptions DROP CONSTRAINT twilio_transcriptions_pkey;
ALTER TABLE twilio_transcriptions ADD PRIMARY KEY (tenant_id, recording_sid);

ALTER TABLE message_events ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX message_events_once ON message_events (message_id, once_key);
ALTER TABLE call_events ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX call_events_once ON call_events (call_id, once_key);
