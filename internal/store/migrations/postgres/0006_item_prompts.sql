-- 0006_item_prompts: a prompt is stored once, not once per image. Kept in
-- step with migrations/sqlite/0006_item_prompts.sql, which says why.
CREATE TABLE item_prompts (
    batch_id        BIGINT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    prompt          TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, seq)
);

ALTER TABLE items ADD COLUMN prompt_seq BIGINT NOT NULL DEFAULT 0;

INSERT INTO item_prompts (batch_id, seq, prompt, negative_prompt)
SELECT batch_id, ROW_NUMBER() OVER (PARTITION BY batch_id ORDER BY MIN(id)), prompt, negative_prompt
FROM items GROUP BY batch_id, prompt, negative_prompt;
UPDATE items SET prompt_seq = p.seq FROM item_prompts p
    WHERE p.batch_id = items.batch_id AND p.prompt = items.prompt AND p.negative_prompt = items.negative_prompt;

ALTER TABLE items DROP COLUMN prompt;
ALTER TABLE items DROP COLUMN negative_prompt;
