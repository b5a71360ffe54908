-- System-level history (`GET [base]/_history`) walks every type newest first.
CREATE INDEX history_time ON history (updated_at DESC, rtype DESC, id DESC, version DESC);
