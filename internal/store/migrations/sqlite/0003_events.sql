-- 0003_events: the per-batch event log behind GET /api/v1/batches/{id}/events
-- (SSE with Last-Event-ID resume). Triggers write it, so every path that
-- changes an item's or a batch's status (worker, cancel, retry, …) is
-- recorded without having to remember to. On SQLite writers are serialised,
-- so the AUTOINCREMENT id is also commit order: a reader that has seen id N
-- will never later see a smaller id appear.
CREATE TABLE batch_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id     INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    item_id      INTEGER REFERENCES items (id) ON DELETE CASCADE, -- NULL for a batch status change
    status       TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))
);
CREATE INDEX batch_events_batch_idx ON batch_events (batch_id, id);

CREATE TRIGGER items_status_event AFTER UPDATE OF status ON items
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO batch_events (batch_id, workspace_id, item_id, status)
    VALUES (NEW.batch_id, NEW.workspace_id, NEW.id, NEW.status);
END;

CREATE TRIGGER batches_status_event AFTER UPDATE OF status ON batches
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO batch_events (batch_id, workspace_id, item_id, status)
    VALUES (NEW.id, NEW.workspace_id, NULL, NEW.status);
END;
