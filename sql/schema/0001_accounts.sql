-- Accounts and the HAT's signing keys: what the foundation needs before any data domain.

CREATE TABLE accounts (
    user_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email        text NOT NULL CHECK (email <> '' AND length(email) <= 320),
    name         text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    -- A bcrypt hash, or '!' for an account that cannot log in with a password.
    pass_hash    text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'platform', 'dataDebit', 'dataCredit')),
    enabled      boolean NOT NULL DEFAULT true,
    -- clock_timestamp(): accounts made in one transaction (owner, platform) still list in order.
    date_created timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_updated timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The owner and platform accounts can never be disabled.
    CONSTRAINT accounts_special_always_enabled CHECK (enabled OR role NOT IN ('owner', 'platform'))
);

-- Emails are compared without case; names exactly. Either one logs in, so both are unique.
CREATE UNIQUE INDEX idx_accounts_lower_email ON accounts (lower(email));
CREATE UNIQUE INDEX idx_accounts_name ON accounts (name);
-- One owner and one platform account per HAT.
CREATE UNIQUE INDEX idx_accounts_role_special ON accounts (role) WHERE role IN ('owner', 'platform');

-- The RSA keys that sign this HAT's tokens. Kept in the HAT's own database so that a HAT process
-- holds no state of its own and its backups carry the key; never served, only the public half.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    private_pem  text NOT NULL,
    public_pem   text NOT NULL,
    date_created timestamptz NOT NULL DEFAULT now()
);

-- The public face of an account, as the API shows it: never the password hash.
CREATE VIEW account_json AS
SELECT user_id,
       date_created,
       json_build_object(
           'userId', user_id,
           'email', email,
           'name', name,
           'role', role,
           'enabled', enabled
       ) AS body
FROM accounts;
