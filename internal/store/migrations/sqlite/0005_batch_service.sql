-- 0005_batch_service: what the batch service (internal/batch) needs.
--
-- items.remote_model: the provider's model id, fixed when the item is
-- planned, so that the worker needs no catalogue lookup of its own.
-- items.job_id: the River job that makes the item, so that cancel and pause
-- find a batch's jobs through the items' own index and river_job's primary
-- key, never through a join on the job's JSON arguments (whose plan could
-- degrade to minutes on a large queue with stale statistics).
ALTER TABLE items ADD COLUMN remote_model TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN job_id INTEGER;

-- batches.submitting: the batch is still being written in chunks by a
-- Create that has not returned; it is not shown, and nothing of it runs.
-- batches.reserved: the credits still held for the batch (reserved, not yet
-- charged or released); the ledger holds the entries, this their sum.
ALTER TABLE batches ADD COLUMN submitting BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE batches ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;

-- Credit accounts: one per workspace. balance is the credits available
-- (grants and adjustments, minus reservations, plus releases): the sum of
-- the workspace's ledger entries other than charges, kept by the trigger
-- below in the same transaction as each entry. A charge draws on a
-- reservation that already left the balance, so it does not change it
-- (which also keeps the image workers' hot path off this row). A limited
-- account can never go below zero; an unlimited one (a self-hoster's own
-- workspace) can, and only its quota bounds it. monthly_quota 0 means none.
CREATE TABLE credit_accounts (
    workspace_id  INTEGER PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    unlimited     BOOLEAN NOT NULL DEFAULT FALSE,
    balance       INTEGER NOT NULL DEFAULT 0,
    monthly_quota INTEGER NOT NULL DEFAULT 0 CHECK (monthly_quota >= 0),
    updated_at    TIMESTAMP NOT NULL,
    CHECK (unlimited OR balance >= 0)
);
-- Workspaces from before credits existed keep working as they did.
INSERT INTO credit_accounts (workspace_id, unlimited, balance, updated_at)
SELECT id, TRUE, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now') FROM workspaces;

-- The ledger's kinds become those the ledger package writes. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt; no table
-- references it.
CREATE TABLE ledger_entries_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'charge', 'release', 'adjustment')),
    amount       INTEGER NOT NULL,
    batch_id     INTEGER REFERENCES batches (id) ON DELETE SET NULL,
    item_id      INTEGER REFERENCES items (id) ON DELETE SET NULL,
    image_id     INTEGER REFERENCES images (id) ON DELETE SET NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    idem_key     TEXT NOT NULL UNIQUE,
    note         TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL
);
INSERT INTO ledger_entries_new SELECT * FROM ledger_entries WHERE kind IN ('grant', 'reserve', 'charge');
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
CREATE INDEX ledger_entries_workspace_idx ON ledger_entries (workspace_id, id);
CREATE INDEX ledger_entries_batch_idx ON ledger_entries (batch_id);
-- The monthly quota sums a month's reservations and releases, which this
-- reads without touching the (many more) charges.
CREATE INDEX ledger_entries_kind_idx ON ledger_entries (workspace_id, kind, created_at);

CREATE TRIGGER ledger_entries_balance AFTER INSERT ON ledger_entries
WHEN NEW.kind <> 'charge'
BEGIN
    UPDATE credit_accounts SET balance = balance + NEW.amount, updated_at = NEW.created_at
    WHERE workspace_id = NEW.workspace_id;
END;

-- Spending per workspace, month and model, for GET /api/v1/usage: the
-- image workers add a group's charges with one statement.
CREATE TABLE usage_monthly (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    month        TEXT NOT NULL, -- 'YYYY-MM', UTC
    model        TEXT NOT NULL,
    images       INTEGER NOT NULL DEFAULT 0,
    credits      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, month, model)
);
