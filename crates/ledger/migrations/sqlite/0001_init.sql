-- The ledger, version 1: windows, per-endpoint window rows, baselines, findings by fingerprint,
-- occurrences, evidence, per-window checks of each finding's metric, deploys, verifications.
CREATE TABLE windows (
    service     TEXT    NOT NULL,
    start_ns    INTEGER NOT NULL,
    end_ns      INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    findings    INTEGER NOT NULL,
    analysed_at INTEGER NOT NULL,
    PRIMARY KEY (service, start_ns)
);

CREATE TABLE endpoint_windows (
    service      TEXT    NOT NULL,
    start_ns     INTEGER NOT NULL,
    endpoint     TEXT    NOT NULL,
    calls        INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    throttled    INTEGER NOT NULL,
    server_errors INTEGER NOT NULL,
    p95_ms       REAL,
    peak_inflight_caller INTEGER NOT NULL,
    PRIMARY KEY (service, start_ns, endpoint)
);

CREATE TABLE baselines (
    service   TEXT    NOT NULL,
    endpoint  TEXT    NOT NULL,
    windows   INTEGER NOT NULL,
    calls     INTEGER NOT NULL,
    errors    INTEGER NOT NULL,
    throttled INTEGER NOT NULL,
    -- Welford running mean and sum of squared deviations, per window.
    rate_mean REAL NOT NULL, rate_m2 REAL NOT NULL,
    p95_n     INTEGER NOT NULL, p95_mean REAL NOT NULL, p95_m2 REAL NOT NULL,
    peak_mean REAL NOT NULL, peak_m2 REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (service, endpoint)
);

CREATE TABLE findings (
    fingerprint  TEXT PRIMARY KEY,
    kind         TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    template     TEXT    NOT NULL,
    status_class TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    summary      TEXT    NOT NULL,
    metric       TEXT,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    occurrences  INTEGER NOT NULL,
    evidence     TEXT,
    state_since  INTEGER NOT NULL,
    suppressed_reason TEXT,
    suppressed_owner  TEXT,
    suppressed_until  INTEGER
);

CREATE TABLE occurrences (
    fingerprint TEXT    NOT NULL,
    window_ns   INTEGER NOT NULL,
    severity    TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    evidence    TEXT,
    PRIMARY KEY (fingerprint, window_ns)
);

CREATE TABLE evidence (
    digest    TEXT PRIMARY KEY,
    service   TEXT    NOT NULL,
    window_ns INTEGER NOT NULL,
    path      TEXT    NOT NULL,
    bytes     INTEGER NOT NULL,
    exchanges INTEGER NOT NULL,
    created   INTEGER NOT NULL,
    deleted   INTEGER
);

CREATE TABLE checks (
    fingerprint TEXT    NOT NULL,
    window_ns   INTEGER NOT NULL,
    value       REAL,
    calls       INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    statuses    TEXT    NOT NULL,
    PRIMARY KEY (fingerprint, window_ns)
);

CREATE TABLE deploys (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT,
    at_ns   INTEGER NOT NULL,
    sha     TEXT,
    created INTEGER NOT NULL
);

CREATE TABLE verifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    report      TEXT    NOT NULL
);

CREATE INDEX findings_state ON findings (state);
CREATE INDEX endpoint_windows_by_service ON endpoint_windows (service, start_ns);
