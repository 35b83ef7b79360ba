-- The address a session signed in from, for the sessions page (where it
-- helps a person tell their sessions apart). Sessions from before have none.
ALTER TABLE sessions ADD COLUMN signed_in_from TEXT;
