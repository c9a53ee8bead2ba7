-- People's idempotency keys (client `user:<id>`) are kept config.idempotency_retention_h hours
-- (24 by default), then purged by ledger.retention; a retry after that is a new transfer. The
-- keys of the service's own clients (funding, risk, system, merchant:<id>) are kept: processes
-- that take days (an ACH return, a refund resumed after a crash) look their outcome up by key,
-- and deleting one could move the money twice.
--
-- The purge finds old keys by time: a partial index, appended at its end as time grows.
CREATE INDEX idempotency_keys_people_by_time ON idempotency_keys (created_at)
    WHERE client_id LIKE 'user:%';

-- The service role may delete idempotency keys (the purge); transfers and entries stay
-- append-only to it.
CREATE OR REPLACE FUNCTION billfold_grant_service_role(service_role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', service_role);
    EXECUTE format('REVOKE ALL ON transfers, entries, idempotency_keys, accounts FROM %I',
                   service_role);
    EXECUTE format('GRANT SELECT, INSERT ON transfers, entries TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON idempotency_keys TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON accounts TO %I', service_role);
    EXECUTE format('GRANT USAGE ON SEQUENCE transfer_ids, accounts_id_seq TO %I', service_role);
    EXECUTE format('GRANT SELECT ON schema_migrations TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON ledger_commit_checks TO %I', service_role);
END;
$$;

-- The bank partner's webhooks, once applied, are kept config.funding_inbox_retention_days (30
-- by default: far past the partner's retries) and then purged (funding.webhooks).
CREATE INDEX webhook_inbox_applied_by_time ON webhook_inbox (received_at)
    WHERE applied_at IS NOT NULL;
