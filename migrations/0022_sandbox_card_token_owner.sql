-- A sandbox card token is its customer's, as a processor's token is: the person who tokenised
-- the card. Another person presenting it (to store a card, or in a charge) gets what an unknown
-- token gets. Tokens made before have no owner: none can be stored as a card any more, and the
-- cards already stored with one still charge (funding.cards.SandboxProcessor).
ALTER TABLE sandbox_card_tokens ADD COLUMN user_id uuid REFERENCES users (id);
