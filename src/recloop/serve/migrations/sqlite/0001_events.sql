-- recloop event store, version 1 (SQLite). Kept in step with postgres/0001_events.sql.
CREATE TABLE requests (
    request_id    TEXT PRIMARY KEY,
    user_key      TEXT NOT NULL,
    created_at    REAL NOT NULL,
    model_version TEXT NOT NULL,
    exploration   TEXT NOT NULL,
    k             INTEGER NOT NULL,
    slate_prob    REAL NOT NULL
);
CREATE INDEX requests_user ON requests (user_key);

CREATE TABLE shown (
    request_id TEXT NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    score      REAL NOT NULL,
    propensity REAL NOT NULL,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE feedback (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL UNIQUE,
    request_id    TEXT NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
    user_key      TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    type          TEXT NOT NULL,
    value         REAL NOT NULL,
    position      INTEGER NOT NULL,
    propensity    REAL NOT NULL,
    model_version TEXT NOT NULL,
    created_at    REAL NOT NULL
);
CREATE INDEX feedback_user ON feedback (user_key);
