-- Finding whether any image still uses a file (batch delete, the worker's
-- duplicate-run cleanup, the blob sweeper) looks images up by blob_key;
-- without this index each lookup read the whole table.
CREATE INDEX images_blob_key_idx ON images (blob_key);
