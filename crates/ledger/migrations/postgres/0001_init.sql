-- The ledger, version 1: windows, per-endpoint window rows, baselines, findings by fingerprint,
-- occurrences, evidence, per-window checks of each finding's metric, deploys, verifications.
CREATE TABLE windows (
    service     TEXT    NOT NULL,
    start_ns    BIGINT NOT NULL,
    end_ns      BIGINT NOT NULL,
    records     BIGINT NOT NULL,
    findings    BIGINT NOT NULL,
    analysed_at BIGINT NOT NULL,
    PRIMARY KEY (service, start_ns)
);

CREATE TABLE endpoint_windows (
    service      TEXT    NOT NULL,
    start_ns     BIGINT NOT NULL,
    endpoint     TEXT    NOT NULL,
    calls        BIGINT NOT NULL,
    errors       BIGINT NOT NULL,
    throttled    BIGINT NOT NULL,
    server_errors BIGINT NOT NULL,
    p95_ms       DOUBLE PRECISION,
    peak_inflight_caller BIGINT NOT NULL,
    PRIMARY KEY (service, start_ns, endpoint)
);

CREATE TABLE baselines (
    service   TEXT    NOT NULL,
    endpoint  TEXT    NOT NULL,
    windows   BIGINT NOT NULL,
    calls     BIGINT NOT NULL,
    errors    BIGINT NOT NULL,
    throttled BIGINT NOT NULL,
    -- Welford running mean and sum of squared deviations, per window.
    rate_mean DOUBLE PRECISION NOT NULL, rate_m2 DOUBLE PRECISION NOT NULL,
    p95_n     BIGINT NOT NULL, p95_mean DOUBLE PRECISION NOT NULL, p95_m2 DOUBLE PRECISION NOT NULL,
    peak_mean DOUBLE PRECISION NOT NULL, peak_m2 DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
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
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    occurrences  BIGINT NOT NULL,
    evidence     TEXT,
    state_since  BIGINT NOT NULL,
    suppressed_reason TEXT,
    suppressed_owner  TEXT,
    suppressed_until  BIGINT
);

CREATE TABLE occurrences (
    fingerprint TEXT    NOT NULL,
    window_ns   BIGINT NOT NULL,
    severity    TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    evidence    TEXT,
    PRIMARY KEY (fingerprint, window_ns)
);

CREATE TABLE evidence (
    digest    TEXT PRIMARY KEY,
    service   TEXT    NOT NULL,
    window_ns BIGINT NOT NULL,
    path      TEXT    NOT NULL,
    bytes     BIGINT NOT NULL,
    exchanges BIGINT NOT NULL,
    created   BIGINT NOT NULL,
    deleted   BIGINT
);

CREATE TABLE checks (
    fingerprint TEXT    NOT NULL,
    window_ns   BIGINT NOT NULL,
    value       DOUBLE PRECISION,
    calls       BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    statuses    TEXT    NOT NULL,
    PRIMARY KEY (fingerprint, window_ns)
);

CREATE TABLE deploys (
    id      BIGSERIAL PRIMARY KEY,
    service TEXT,
    at_ns   BIGINT NOT NULL,
    sha     TEXT,
    created BIGINT NOT NULL
);

CREATE TABLE verifications (
    id          BIGSERIAL PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT    NOT NULL,
    report      TEXT    NOT NULL
);

CREATE INDEX findings_state ON findings (state);
CREATE INDEX endpoint_windows_by_service ON endpoint_windows (service, start_ns);
