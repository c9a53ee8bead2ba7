-- Issue 24, a step-up a thief cannot answer.
--
-- When the user's PIN was last changed (one replacing another, with the password or the PIN it
-- replaced). A PIN changed within 24 hours does not clear a step-up: the movement goes to
-- review instead. A first PIN leaves it NULL: setting one is onboarding, not a change
-- (docs/decisions.md, "A step-up a thief cannot answer").
ALTER TABLE users ADD COLUMN pin_changed_at timestamptz;
ALTER TABLE users ADD CONSTRAINT users_pin_changed_has_pin
    CHECK (pin_changed_at IS NULL OR pin_hash IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_pin_changed_has_pin;

-- Device ids now come from signed device tokens. A request whose X-Device-Id is no valid token
-- of its user's is scored as the device '(unverified)', which must never become a known
-- device (risk.engine remembers none; this says it again). A client could have sent that very
-- string before device tokens, so such rows go first.
DELETE FROM user_devices WHERE device_id = '(unverified)';
ALTER TABLE user_devices ADD CONSTRAINT user_devices_not_unverified
    CHECK (device_id <> '(unverified)') NOT VALID;
ALTER TABLE user_devices VALIDATE CONSTRAINT user_devices_not_unverified;
