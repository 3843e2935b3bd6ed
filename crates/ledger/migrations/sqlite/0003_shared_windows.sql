-- Version 3: what several `af serve` replicas on one database share. Records wait in `pending`
-- until their window is analysed (by whichever replica claims it in `pending_windows`), and
-- evidence keeps its bytes in the database so that any machine can read it. The embedded
-- SQLite ledger has one server: it keeps these tables empty (its records wait in the segment
-- log, its evidence in files), but the schema is the same on both engines.
ALTER TABLE evidence ADD COLUMN content BLOB;

CREATE TABLE pending (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    service   TEXT    NOT NULL,
    window_ns INTEGER NOT NULL,
    record    BLOB    NOT NULL
);
CREATE INDEX pending_by_window ON pending (service, window_ns, id);

CREATE TABLE pending_windows (
    service       TEXT    NOT NULL,
    window_ns     INTEGER NOT NULL,
    max_start     INTEGER NOT NULL,
    last_arrival  INTEGER NOT NULL,
    claimed_by    TEXT,
    claimed_until INTEGER,
    done          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (service, window_ns)
);
