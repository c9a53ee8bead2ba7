-- Add-funds and cash-outs the risk engine held for a second factor (step-up) or a review, as
-- P2P transfers are (0009). A held movement is recorded but not released to its rail: a cash-out
-- reserves its money with a ledger hold at once but is neither exported nor settled; an ACH
-- add-funds books nothing and is not exported; a card is not charged. The user's PIN or an
-- operator releases it (risk_status back to NULL), or three wrong PINs or a rejection decline
-- it (status 'declined': a cash-out's hold voided, an add-funds never booked). All new columns
-- are nullable or have a constant default: adding them rewrites nothing.
ALTER TABLE funding_transfers
    -- What the movement waits for; NULL: released (or never held).
    ADD COLUMN risk_status      text,
    -- The assessment that held it; set on every movement that was ever held.
    ADD COLUMN assessment_id    bigint REFERENCES risk_assessments (id),
    ADD COLUMN pin_failures     int NOT NULL DEFAULT 0,
    ADD COLUMN risk_decided_at  timestamptz;

ALTER TABLE funding_transfers
    DROP CONSTRAINT funding_status_known,
    ADD CONSTRAINT funding_status_known
        CHECK (status IN ('pending', 'settled', 'returned', 'declined')),
    ADD CONSTRAINT funding_risk_status_known
        CHECK (risk_status IN ('pending_verification', 'pending_review')),
    -- Held only while pending and not yet sent to the bank, and always on an assessment.
    ADD CONSTRAINT funding_held_before_the_rail CHECK (risk_status IS NULL
        OR (status = 'pending' AND exported_at IS NULL AND assessment_id IS NOT NULL)),
    -- Only the risk engine's hold declines a movement, and a declined one never reached a rail.
    ADD CONSTRAINT funding_declined_when_held CHECK (status <> 'declined'
        OR (assessment_id IS NOT NULL AND risk_decided_at IS NOT NULL AND exported_at IS NULL)),
    ADD CONSTRAINT funding_pin_failures CHECK (pin_failures BETWEEN 0 AND 3);

-- Operators read the queue oldest first.
CREATE INDEX funding_transfers_review_queue ON funding_transfers (created_at)
    WHERE risk_status = 'pending_review';
