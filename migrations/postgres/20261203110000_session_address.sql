-- The address a session signed in from, for the sessions page (where it
-- helps a person tell their sessions apart). Sessions from before have none.
-- A column without a default costs no table rewrite.
SET LOCAL lock_timeout = '10s';
ALTER TABLE sessions ADD COLUMN signed_in_from TEXT;
