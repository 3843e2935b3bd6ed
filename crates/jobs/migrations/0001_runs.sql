-- One row per run (a job and every delivery of it). Written in the SQL both SQLite and
-- PostgreSQL read: TEXT, BIGINT (milliseconds since the epoch), $N placeholders.
CREATE TABLE IF NOT EXISTS af_runs (
    id TEXT PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    service TEXT NOT NULL,
    input TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    deliveries BIGINT NOT NULL DEFAULT 0,
    worker TEXT,
    task_id TEXT,
    cause TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    not_before_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    outcome TEXT,
    error TEXT,
    run_dir TEXT,
    wall_ms BIGINT,
    tokens BIGINT,
    dollars_micros BIGINT
);
CREATE INDEX IF NOT EXISTS af_runs_status ON af_runs (status);
CREATE INDEX IF NOT EXISTS af_runs_fingerprint ON af_runs (fingerprint);

-- External effects made by runs (an issue, a pull request, a comment), keyed by what makes
-- them the same effect; a redelivered run finds its effect here (or at the provider, by marker).
CREATE TABLE IF NOT EXISTS af_effects (
    effect_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    url TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS af_effects_fingerprint ON af_effects (fingerprint);
