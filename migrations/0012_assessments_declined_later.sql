-- A movement held for a PIN or a review and then declined never moved money: it is no part of
-- the user's past that the risk engine's features and rules read (risk.serving). The flag is
-- kept by triggers on the two tables that decline held movements, so no code path can forget
-- it; the assessment's own verdict stays as it was given.
ALTER TABLE risk_assessments ADD COLUMN declined_later boolean NOT NULL DEFAULT false;

CREATE FUNCTION risk_assessment_declined_later() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE risk_assessments SET declined_later = true WHERE id = NEW.assessment_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER held_transfer_declined
    AFTER UPDATE OF status ON held_transfers
    FOR EACH ROW WHEN (NEW.status = 'DECLINED' AND OLD.status IS DISTINCT FROM 'DECLINED')
    EXECUTE FUNCTION risk_assessment_declined_later();

CREATE TRIGGER funding_transfer_declined
    AFTER UPDATE OF status ON funding_transfers
    FOR EACH ROW WHEN (NEW.status = 'declined' AND OLD.status IS DISTINCT FROM 'declined'
                       AND NEW.assessment_id IS NOT NULL)
    EXECUTE FUNCTION risk_assessment_declined_later();
