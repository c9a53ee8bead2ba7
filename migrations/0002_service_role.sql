-- The service's own database role. In production the service connects as a role that may add to
-- the ledger but never change it: no UPDATE, DELETE or TRUNCATE on transfers and entries, on top
-- of the triggers that refuse them. Run once, as the owner of the tables, after `billfold migrate`:
--
--     CREATE ROLE billfold_app LOGIN PASSWORD '...';
--     SELECT billfold_grant_service_role('billfold_app');
CREATE FUNCTION billfold_grant_service_role(service_role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', service_role);
    EXECUTE format('REVOKE ALL ON transfers, entries, idempotency_keys, accounts FROM %I',
                   service_role);
    EXECUTE format('GRANT SELECT, INSERT ON transfers, entries, idempotency_keys TO %I',
                   service_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON accounts TO %I', service_role);
    EXECUTE format('GRANT USAGE ON SEQUENCE transfer_ids, accounts_id_seq TO %I', service_role);
    EXECUTE format('GRANT SELECT ON schema_migrations TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON ledger_commit_checks TO %I', service_role);
END;
$$;
