-- 0002_item_parent_image: a regenerated image is a new item (its prompt,
-- model or seed may differ from the original's), and the item remembers the
-- image it regenerates so that the worker can set images.parent_id, which
-- GET /api/v1/images/{id}/versions follows.
ALTER TABLE items ADD COLUMN parent_image_id INTEGER REFERENCES images (id) ON DELETE SET NULL;
CREATE INDEX items_parent_image_idx ON items (parent_image_id);
