-- "Keep me signed in": a session started without it lives only as long as
-- the browser (its cookies carry no Max-Age) and ends after
-- BROWSER_SESSION_IDLE unused; one started with it behaves as every
-- session did before. Every existing session was started the old way, so
-- the column's default is "remembered". With a constant default the
-- column costs no table rewrite; an instance of the previous version can
-- go on inserting sessions meanwhile (they get the default).
SET LOCAL lock_timeout = '10s';
ALTER TABLE sessions ADD COLUMN remembered BOOLEAN NOT NULL DEFAULT true;
