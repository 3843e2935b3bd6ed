-- Version 3: what several `af serve` replicas on one database share. Records wait in `pending`
-- until their window is analysed (by whichever replica claims it in `pending_windows`), and
-- evidence keeps its bytes in the database so that any machine can read it. The embedded
-- SQLite ledger has one server: it keeps these tables empty (its records wait in the segment
-- log, its evidence in files), but the schema is the same on both engines.
ALTER TABLE evidence ADD COLUMN content BYTEA;

CREATE TABLE pending (
    id        BIGSERIAL PRIMARY KEY,
    service   TEXT    NOT NULL,
    window_ns BIGINT NOT NULL,
    record    BYTEA    NOT NULL
);
CREATE INDEX pending_by_window ON pending (service, window_ns, id);

CREATE TABLE pending_windows (
    service       TEXT    NOT NULL,
    window_ns     BIGINT NOT NULL,
    max_start     BIGINT NOT NULL,
    last_arrival  BIGINT NOT NULL,
    claimed_by    TEXT,
    claimed_until BIGINT,
    done          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (service, window_ns)
);
