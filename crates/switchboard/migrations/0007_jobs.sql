-- One work queue for every kind of background job. A job names the row it works on; the
-- row keeps the business state (a message's status, a recording's file), the job only the
-- queue's: when it is due, who holds it and until when, how many tries, and whether an outside
-- call may already have happened (`submitting`: reconcile before doing it again).
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    claim_token TEXT,
    submitting BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (kind, state, run_at);

-- Work that was waiting in the per-table queues moves here.
INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, lease_until, submitting, attempts, created_at, updated_at)
SELECT 'message:' || id, 'message', id, tenant_id,
       CASE WHEN status = 'submitting' THEN 'running' ELSE 'queued' END,
       COALESCE(next_attempt_at, created_at),
       CASE WHEN status = 'submitting' THEN COALESCE(lease_until, 0) END,
       CASE WHEN status = 'submitting' THEN 1 ELSE 0 END,
       attempts, created_at, updated_at
FROM messages WHERE status IN ('accepted', 'submitting') AND direction = 'outbound';

INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, created_at, updated_at)
SELECT 'status_poll:' || id, 'status_poll', id, tenant_id, 'queued', next_attempt_at, created_at, updated_at
FROM messages WHERE status IN ('queued', 'sending', 'sent') AND next_attempt_at IS NOT NULL AND direction = 'outbound';

INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, lease_until, submitting, attempts, created_at, updated_at)
SELECT 'call:' || id, 'call', id, tenant_id,
       CASE WHEN status = 'submitting' THEN 'running' ELSE 'queued' END,
       COALESCE(next_attempt_at, created_at),
       CASE WHEN status = 'submitting' THEN COALESCE(lease_until, 0) END,
       CASE WHEN status = 'submitting' THEN 1 ELSE 0 END,
       attempts, created_at, updated_at
FROM calls WHERE status IN ('accepted', 'submitting');

INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, attempts, created_at, updated_at)
SELECT 'media:' || id, 'media', id, tenant_id, 'queued', COALESCE(next_attempt_at, created_at), attempts, created_at, created_at
FROM media WHERE status = 'pending';

INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, attempts, created_at, updated_at)
SELECT 'recording:' || id, 'recording', id, tenant_id, 'queued', COALESCE(next_attempt_at, created_at), attempts, created_at, created_at
FROM recordings WHERE status = 'pending';

INSERT INTO jobs (id, kind, subject_id, tenant_id, state, run_at, attempts, created_at, updated_at)
SELECT 'transcription:' || id, 'transcription', id, tenant_id, 'queued', COALESCE(transcription_next_at, created_at),
       transcription_attempts, created_at, updated_at
FROM voicemails WHERE transcription_status = 'pending' AND transcription_source = 'stt';
