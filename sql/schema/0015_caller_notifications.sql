-- What checking a token asks of the database (an account's role and whether it is enabled; whether
-- the approval a service's token names still stands) is kept in memory by every hatd process
-- serving this HAT (hatd/callers.py), which LISTENs on the channel hatd_callers to forget it the
-- moment it changes. These triggers say on that channel what changed: 'account:<userId>',
-- 'approval:<id>', or 'accounts' / 'approved_services' for a TRUNCATE. A notification is sent
-- when the transaction commits, never for one rolled back; it reaches only the sessions of this
-- database, so the HATs that share one PostgreSQL never hear each other's.

CREATE FUNCTION notify_callers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('hatd_callers', TG_TABLE_NAME);
    ELSIF TG_TABLE_NAME = 'accounts' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('hatd_callers', 'account:' || OLD.user_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('hatd_callers', 'account:' || NEW.user_id);
        END IF;
    ELSE
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('hatd_callers', 'approval:' || OLD.id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('hatd_callers', 'approval:' || NEW.id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Only the columns a token check reads: a password change (pass_hash) or a new name says nothing.
CREATE TRIGGER accounts_notify_callers
    AFTER INSERT OR DELETE OR UPDATE OF user_id, role, enabled ON accounts
    FOR EACH ROW EXECUTE FUNCTION notify_callers();
CREATE TRIGGER accounts_truncate_notify_callers
    AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_callers();

CREATE TRIGGER approved_services_notify_callers
    AFTER INSERT OR DELETE OR UPDATE ON approved_services
    FOR EACH ROW EXECUTE FUNCTION notify_callers();
CREATE TRIGGER approved_services_truncate_notify_callers
    AFTER TRUNCATE ON approved_services
    FOR EACH STATEMENT EXECUTE FUNCTION notify_callers();
