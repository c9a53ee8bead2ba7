-- Operators act on users: freeze and unfreeze, flag and unflag. Every action is recorded here,
-- who, what, when and why, in the same transaction as its effect; the record can't be changed
-- or removed.
ALTER TABLE users ADD COLUMN flagged boolean NOT NULL DEFAULT false;

CREATE TABLE operator_actions (
    id           bigserial   PRIMARY KEY,
    operator_id  uuid        NOT NULL REFERENCES users (id),
    action       text        NOT NULL,
    subject      text        NOT NULL,
    reason       text        NOT NULL,
    detail       jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT operator_actions_reason_length CHECK (length(reason) BETWEEN 1 AND 500)
);

CREATE INDEX operator_actions_subject ON operator_actions (subject, created_at);

CREATE FUNCTION billfold_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the audit trail is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER operator_actions_append_only
    BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION billfold_audit_refuse_change();
CREATE TRIGGER operator_actions_no_truncate
    BEFORE TRUNCATE ON operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION billfold_audit_refuse_change();
