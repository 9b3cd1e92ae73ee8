-- Accounts, their passwords and the HAT's signing keys (hatd/accounts/repository.py).

-- name: caller_status
-- Returns role and enabled of one account, for checking a token on every request.
SELECT role, enabled FROM accounts WHERE user_id = $1;

-- name: find_login
-- Returns the account a username names: by email (any case) first, else by name.
SELECT user_id, role, enabled, pass_hash
FROM accounts
WHERE lower(email) = lower($1) OR name = $1
ORDER BY lower(email) = lower($1) DESC
LIMIT 1;

-- name: insert_account
-- Creates an account (a server-made userId when $1 is null); returns its userId.
INSERT INTO accounts (user_id, email, name, pass_hash, role)
VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5)
RETURNING user_id;

-- name: account_json
-- Returns one account as JSON text.
SELECT body::text FROM account_json WHERE user_id = $1;

-- name: list_accounts_json
-- Returns every account as a JSON array (text), oldest first.
SELECT coalesce(json_agg(body ORDER BY date_created, user_id), '[]')::text FROM account_json;

-- name: account_role
-- Returns the role of one account, locking its row for an update.
SELECT role FROM accounts WHERE user_id = $1 FOR UPDATE;

-- name: set_enabled
-- Enables or disables one account; returns nothing.
UPDATE accounts SET enabled = $2, last_updated = now() WHERE user_id = $1;

-- name: special_account
-- Returns the userId of the owner or platform account ($1 is the role), if the HAT has one.
SELECT user_id FROM accounts WHERE role = $1;

-- name: special_accounts
-- Returns role, email, name and pass_hash of the owner and platform accounts.
SELECT role, email, name, pass_hash FROM accounts WHERE role IN ('owner', 'platform');

-- name: set_password
-- Sets the password hash of the owner or platform account ($1 is the role) and closes its browser
-- sessions; returns its userId.
WITH changed AS (
    UPDATE accounts SET pass_hash = $2, last_updated = now() WHERE role = $1 RETURNING user_id
), closed AS (
    DELETE FROM web_sessions WHERE user_id IN (SELECT user_id FROM changed)
)
SELECT user_id FROM changed;

-- name: set_login_password
-- Sets the password hash of the account username $1 logs in as (its email in any case, else its
-- name: as find_login) and closes its browser sessions; returns its userId, role and enabled, or
-- no row when no account has that email or name.
WITH target AS (
    SELECT user_id
    FROM accounts
    WHERE lower(email) = lower($1) OR name = $1
    ORDER BY lower(email) = lower($1) DESC
    LIMIT 1
    FOR UPDATE
), changed AS (
    UPDATE accounts SET pass_hash = $2, last_updated = now()
    WHERE user_id = (SELECT user_id FROM target)
    RETURNING user_id, role, enabled
), closed AS (
    DELETE FROM web_sessions WHERE user_id IN (SELECT user_id FROM changed)
)
SELECT user_id, role, enabled FROM changed;

-- name: current_signing_key
-- Returns the newest signing key pair.
SELECT kid, private_pem, public_pem FROM signing_keys ORDER BY date_created DESC, kid LIMIT 1;

-- name: insert_signing_key
-- Stores a signing key pair; returns nothing.
INSERT INTO signing_keys (kid, private_pem, public_pem) VALUES ($1, $2, $3);

-- name: lock_hat_creation
-- Waits until no other process is creating this HAT (held to the end of the transaction).
SELECT pg_advisory_xact_lock($1);

-- name: owner_login
-- Returns the owner account with its password hash, for the owner's login page.
SELECT user_id, role, enabled, pass_hash FROM accounts WHERE role = 'owner';

-- name: change_password
-- Sets account $1's password hash to $3 if it is still $2 (the one the current password was
-- checked against) and closes its browser sessions but $4 (the secret hash of the one asking);
-- returns how many it closed, or no row when the hash had changed meanwhile.
WITH changed AS (
    UPDATE accounts SET pass_hash = $3, last_updated = now()
    WHERE user_id = $1 AND pass_hash = $2
    RETURNING user_id
), closed AS (
    DELETE FROM web_sessions WHERE user_id IN (SELECT user_id FROM changed) AND secret_hash <> $4
    RETURNING 1
)
SELECT (SELECT count(*) FROM closed) AS closed FROM changed;

-- name: record_served_address
-- Records $1 as the address the HAT is served at (by `hatd serve`, at every start); returns nothing.
INSERT INTO served_address (address) VALUES ($1)
ON CONFLICT (id) DO UPDATE SET address = excluded.address, served_at = now();

-- name: served_address
-- Returns the address `hatd serve` last recorded for the HAT, if any.
SELECT address FROM served_address;
