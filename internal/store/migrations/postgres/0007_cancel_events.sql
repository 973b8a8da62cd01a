-- 0007_cancel_events: no event per item for a cancel's pending → canceled
-- moves; see migrations/sqlite/0007_cancel_events.sql.
DROP TRIGGER items_status_event ON items;
CREATE TRIGGER items_status_event AFTER UPDATE OF status ON items
FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status = 'pending' AND NEW.status = 'canceled'))
EXECUTE FUNCTION bulkgen_item_status_event();
