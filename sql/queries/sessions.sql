-- The owner's browser sessions (hatd/web/sessions.py).

-- name: insert_session
-- Opens a session for an account until $4; returns nothing.
INSERT INTO web_sessions (secret_hash, user_id, csrf, expires) VALUES ($1, $2, $3, $4);

-- name: find_session
-- Returns the account and CSRF token of a live session of an enabled account, if there is one.
SELECT s.user_id, s.csrf, a.role
FROM web_sessions s
JOIN accounts a ON a.user_id = s.user_id
WHERE s.secret_hash = $1 AND s.expires > now() AND a.enabled;

-- name: delete_session
-- Closes one session; returns nothing.
DELETE FROM web_sessions WHERE secret_hash = $1;

-- name: delete_expired_sessions
-- Forgets sessions past their time; returns nothing.
DELETE FROM web_sessions WHERE expires <= now();

