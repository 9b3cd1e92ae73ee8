-- The owner's browser sessions (hatd/web/sessions.py).

-- name: insert_session
-- Opens a session for an account until $4, from the browser $5 names; returns nothing.
INSERT INTO web_sessions (secret_hash, user_id, csrf, expires, user_agent) VALUES ($1, $2, $3, $4, $5);

-- name: find_session
-- Returns the id, account and CSRF token of a live session of an enabled account, if there is one;
-- marks it seen now when it was last seen over a minute ago (one write a minute, not one a page).
WITH found AS (
    SELECT s.id, s.user_id, s.csrf, a.role, s.last_seen
    FROM web_sessions s
    JOIN accounts a ON a.user_id = s.user_id
    WHERE s.secret_hash = $1 AND s.expires > now() AND a.enabled
), seen AS (
    UPDATE web_sessions SET last_seen = now()
    WHERE secret_hash = $1 AND EXISTS (SELECT 1 FROM found WHERE last_seen < now() - interval '1 minute')
)
SELECT id, user_id, csrf, role FROM found;

-- name: list_sessions
-- Returns the live sessions of account $1 (id, opened, last seen, browser), the last seen first.
SELECT id, date_created, last_seen, user_agent
FROM web_sessions
WHERE user_id = $1 AND expires > now()
ORDER BY last_seen DESC, id DESC;

-- name: delete_session_of
-- Closes session $2 of account $1; returns its id (no row if the account has no such session).
DELETE FROM web_sessions WHERE user_id = $1 AND id = $2 RETURNING id;

-- name: delete_session
-- Closes one session; returns nothing.
DELETE FROM web_sessions WHERE secret_hash = $1;

-- name: delete_expired_sessions
-- Forgets sessions past their time; returns nothing.
DELETE FROM web_sessions WHERE expires <= now();

