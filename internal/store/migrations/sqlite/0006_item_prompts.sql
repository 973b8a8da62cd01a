-- 0006_item_prompts: a prompt is stored once, not once per image. A row
-- asking for n images of a long prompt made n copies of it (and a batch of
-- a thousand such rows a thousand times that); now the items of a batch
-- that share a prompt and negative prompt point at one item_prompts row,
-- numbered within its batch (seq), which the items' reads join.
CREATE TABLE item_prompts (
    batch_id        INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    prompt          TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, seq)
);

ALTER TABLE items ADD COLUMN prompt_seq INTEGER NOT NULL DEFAULT 0;

-- Existing items: one prompt row per distinct prompt of each batch.
INSERT INTO item_prompts (batch_id, seq, prompt, negative_prompt)
SELECT batch_id, ROW_NUMBER() OVER (PARTITION BY batch_id ORDER BY MIN(id)), prompt, negative_prompt
FROM items GROUP BY batch_id, prompt, negative_prompt;
UPDATE items SET prompt_seq = (SELECT p.seq FROM item_prompts p
    WHERE p.batch_id = items.batch_id AND p.prompt = items.prompt AND p.negative_prompt = items.negative_prompt);

ALTER TABLE items DROP COLUMN prompt;
ALTER TABLE items DROP COLUMN negative_prompt;
