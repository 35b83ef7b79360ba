-- Rotation is one statement: inserting a token's successor spends the parent
-- and touches the session in the same implicit transaction. So the fast path
-- of refresh is a single round trip to SQLite, and the write lock is held for
-- that one statement.
CREATE TRIGGER refresh_tokens_spend_parent
AFTER INSERT ON refresh_tokens
WHEN NEW.parent_id IS NOT NULL
BEGIN
    UPDATE refresh_tokens SET used_at = NEW.issued_at, successor_id = NEW.id
    WHERE id = NEW.parent_id AND used_at IS NULL;
    UPDATE sessions SET last_used_at = NEW.issued_at WHERE id = NEW.session_id;
END;
