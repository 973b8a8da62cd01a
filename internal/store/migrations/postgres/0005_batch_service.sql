-- 0005_batch_service: what the batch service (internal/batch) needs. Kept
-- in step with migrations/sqlite/0005_batch_service.sql, which says why
-- each part exists.
ALTER TABLE items ADD COLUMN remote_model TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN job_id BIGINT;

ALTER TABLE batches ADD COLUMN submitting BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE batches ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0;

CREATE TABLE credit_accounts (
    workspace_id  BIGINT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    unlimited     BOOLEAN NOT NULL DEFAULT FALSE,
    balance       BIGINT NOT NULL DEFAULT 0,
    monthly_quota BIGINT NOT NULL DEFAULT 0 CHECK (monthly_quota >= 0),
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK (unlimited OR balance >= 0)
);
INSERT INTO credit_accounts (workspace_id, unlimited, balance, updated_at)
SELECT id, TRUE, 0, now() FROM workspaces;

DELETE FROM ledger_entries WHERE kind NOT IN ('grant', 'reserve', 'charge');
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('grant', 'reserve', 'charge', 'release', 'adjustment'));
CREATE INDEX ledger_entries_batch_idx ON ledger_entries (batch_id);
CREATE INDEX ledger_entries_kind_idx ON ledger_entries (workspace_id, kind, created_at);

CREATE FUNCTION bulkgen_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credit_accounts SET balance = balance + NEW.amount, updated_at = NEW.created_at
    WHERE workspace_id = NEW.workspace_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ledger_entries_balance AFTER INSERT ON ledger_entries
FOR EACH ROW WHEN (NEW.kind <> 'charge')
EXECUTE FUNCTION bulkgen_ledger_balance();

CREATE TABLE usage_monthly (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    month        TEXT NOT NULL,
    model        TEXT NOT NULL,
    images       BIGINT NOT NULL DEFAULT 0,
    credits      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, month, model)
);
