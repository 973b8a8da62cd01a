-- 0001_init: accounts, workspaces, batches, items, images, attempts, ledger.
-- Times are TEXT in the fixed UTC form 'YYYY-MM-DD HH:MM:SS.ffffff' (see
-- dialect.go); JSON is TEXT; booleans are 0/1. AUTOINCREMENT keeps ids from
-- being reused after a delete, so an old link can never reach a newer row.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'support', 'admin')),
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE workspaces (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX workspaces_owner_idx ON workspaces (owner_user_id, id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    token_hash   BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);

CREATE TABLE projects (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE batches (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id      INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    user_id         INTEGER REFERENCES users (id) ON DELETE SET NULL,
    name            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'paused', 'succeeded', 'failed', 'canceled', 'partial')),
    source_file     TEXT NOT NULL DEFAULT '',
    template        TEXT NOT NULL DEFAULT '',
    defaults        TEXT NOT NULL DEFAULT '{}',
    naming_template TEXT NOT NULL DEFAULT '',
    dry_run         BOOLEAN NOT NULL DEFAULT FALSE,
    total_count     INTEGER NOT NULL DEFAULT 0,
    succeeded_count INTEGER NOT NULL DEFAULT 0,
    failed_count    INTEGER NOT NULL DEFAULT 0,
    canceled_count  INTEGER NOT NULL DEFAULT 0,
    cost_estimate   INTEGER NOT NULL DEFAULT 0,
    cost_spent      INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP
);
CREATE INDEX batches_workspace_idx ON batches (workspace_id, id);
CREATE INDEX batches_workspace_status_idx ON batches (workspace_id, status, id);
CREATE INDEX batches_project_idx ON batches (project_id, id);

CREATE TABLE items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id        INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    source_line     INTEGER NOT NULL DEFAULT 0,
    idx             INTEGER NOT NULL DEFAULT 1,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceled')),
    prompt          TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    model           TEXT NOT NULL DEFAULT '',
    provider        TEXT NOT NULL DEFAULT '',
    width           INTEGER NOT NULL DEFAULT 0,
    height          INTEGER NOT NULL DEFAULT 0,
    aspect_ratio    TEXT NOT NULL DEFAULT '',
    quality         TEXT NOT NULL DEFAULT '',
    style           TEXT NOT NULL DEFAULT '',
    format          TEXT NOT NULL DEFAULT '',
    seed            INTEGER,
    options         TEXT NOT NULL DEFAULT '{}',
    vars            TEXT NOT NULL DEFAULT '{}',
    name            TEXT NOT NULL,
    cost_estimate   INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    error_class     TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (batch_id, name)
);
CREATE INDEX items_batch_idx ON items (batch_id, id);
CREATE INDEX items_batch_status_idx ON items (batch_id, status, id);
CREATE INDEX items_workspace_idx ON items (workspace_id, id);

CREATE TABLE images (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id      INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    batch_id     INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    generation   INTEGER NOT NULL DEFAULT 1,
    parent_id    INTEGER REFERENCES images (id) ON DELETE SET NULL,
    blob_key     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    format       TEXT NOT NULL,
    seed         INTEGER,
    provider     TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL DEFAULT '',
    request_id   TEXT NOT NULL DEFAULT '',
    cost         INTEGER NOT NULL DEFAULT 0,
    latency_ms   INTEGER NOT NULL DEFAULT 0,
    review       TEXT NOT NULL DEFAULT 'none' CHECK (review IN ('none', 'approved', 'rejected')),
    is_preview   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMP NOT NULL,
    -- The worker's insert is idempotent on its job's identity: one image per
    -- (item, generation), whatever the number of times the job runs.
    UNIQUE (item_id, generation)
);
CREATE INDEX images_workspace_idx ON images (workspace_id, id);
CREATE INDEX images_batch_idx ON images (batch_id, id);
CREATE INDEX images_parent_idx ON images (parent_id);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id      INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    generation   INTEGER NOT NULL DEFAULT 1,
    job_attempt  INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'snoozed', 'canceled')),
    error_class  TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    latency_ms   INTEGER NOT NULL DEFAULT 0,
    request_id   TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    UNIQUE (item_id, generation, job_attempt)
);
CREATE INDEX attempts_workspace_idx ON attempts (workspace_id, id);

CREATE TABLE ledger_entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('grant', 'purchase', 'reserve', 'charge', 'refund', 'expire')),
    amount       INTEGER NOT NULL,
    batch_id     INTEGER REFERENCES batches (id) ON DELETE SET NULL,
    item_id      INTEGER REFERENCES items (id) ON DELETE SET NULL,
    image_id     INTEGER REFERENCES images (id) ON DELETE SET NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    idem_key     TEXT NOT NULL UNIQUE,
    note         TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_workspace_idx ON ledger_entries (workspace_id, id);
