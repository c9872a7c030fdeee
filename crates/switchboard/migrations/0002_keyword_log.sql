-- Every STOP/START/HELP-family keyword received, per tenant, sender number and phone: the
-- compliance record behind the opt-out ledger (which keeps only the current state).
CREATE TABLE keyword_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    sender TEXT NOT NULL,
    phone TEXT NOT NULL,
    keyword TEXT NOT NULL,
    body TEXT NOT NULL,
    message_id TEXT REFERENCES messages (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX keyword_log_tenant ON keyword_log (tenant_id, created_at);
