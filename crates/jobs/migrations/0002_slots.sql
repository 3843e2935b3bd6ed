-- Concurrency limits shared by every worker on this database: a limit of N on a key is N slot
-- rows `key#0 … key#N-1`, each held by one run until released or until its lease lapses.
CREATE TABLE IF NOT EXISTS af_slots (
    slot TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
