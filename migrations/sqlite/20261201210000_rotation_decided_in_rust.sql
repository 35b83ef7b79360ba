-- Rotation is decided in Rust (src/auth/store/rules.rs) and applied by the
-- store with a conditional write in one transaction: the parent is spent
-- only if it is still unspent, then its successor is stored and the session
-- touched. The trigger that spent a parent whenever a successor was inserted
-- did part of that behind the store's back; nothing of the rule stays in
-- the schema.
DROP TRIGGER IF EXISTS refresh_tokens_spend_parent;
