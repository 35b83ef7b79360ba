-- "Keep me signed in": a session started without it lives only as long as
-- the browser (its cookies carry no Max-Age) and ends after
-- BROWSER_SESSION_IDLE unused; one started with it behaves as every
-- session did before. Every existing session was started the old way, so
-- the column's default is "remembered".
ALTER TABLE sessions ADD COLUMN remembered INTEGER NOT NULL DEFAULT 1;
