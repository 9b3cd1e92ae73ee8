-- The owner's browser sessions, for /hatlogin and the owner's pages. The cookie carries a random
-- secret; only its SHA-256 is stored, so a copy of the database opens no session.

CREATE TABLE web_sessions (
    secret_hash  bytea PRIMARY KEY CHECK (length(secret_hash) = 32),
    user_id      uuid NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    -- The token every form of this session must carry (a POST without it is refused).
    csrf         text NOT NULL CHECK (length(csrf) >= 32),
    date_created timestamptz NOT NULL DEFAULT now(),
    expires      timestamptz NOT NULL
);
CREATE INDEX idx_web_sessions_user_id ON web_sessions (user_id);
CREATE INDEX idx_web_sessions_expires ON web_sessions (expires);
