-- What the owner sees of each of their browser sessions on the Security page, so that they can
-- tell them apart and end one: a number to name it in a form (never the secret's hash), when it
-- was last used, and the browser it was opened from (as it said, cut to 300 characters).

ALTER TABLE web_sessions
    ADD COLUMN id         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN last_seen  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN user_agent text NOT NULL DEFAULT '' CHECK (length(user_agent) <= 300);
