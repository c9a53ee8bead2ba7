-- A card's processor token charges the card: it is kept sealed like a bank account number
-- (AES-GCM, a data key per value wrapped by the key named by key_id, both bound to the row by
-- their associated data), with a keyed hash (token_index) to find the same token twice.
-- Rows written before this migration keep their plaintext `token` until the service seals
-- them when it starts (funding.cards.seal_plaintext_tokens); new rows never hold one.
ALTER TABLE cards ALTER COLUMN token DROP NOT NULL;
ALTER TABLE cards
    ADD COLUMN token_enc   bytea,
    ADD COLUMN token_dek   bytea,
    ADD COLUMN key_id      text,
    ADD COLUMN token_index bytea;
ALTER TABLE cards ADD CONSTRAINT cards_token_sealed_or_plain CHECK (
    (token IS NULL AND token_enc IS NOT NULL AND token_dek IS NOT NULL AND key_id IS NOT NULL
        AND token_index IS NOT NULL)
    OR (token IS NOT NULL AND token_enc IS NULL AND token_dek IS NULL AND key_id IS NULL
        AND token_index IS NULL));
CREATE UNIQUE INDEX cards_token_index ON cards (token_index);
