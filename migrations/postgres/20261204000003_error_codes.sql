-- The error table's code (src/domain/error_code.rs) beside the raw error text, so a failure a
-- user reports by its code can be found, and audit rows say which refusal it was.
ALTER TABLE query_history ADD COLUMN error_code TEXT;
ALTER TABLE audit_logs ADD COLUMN code TEXT;
