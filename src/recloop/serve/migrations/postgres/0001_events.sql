-- recloop event store, version 1 (PostgreSQL). Kept in step with sqlite/0001_events.sql.
CREATE TABLE requests (
    request_id    TEXT PRIMARY KEY,
    user_key      TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    model_version TEXT NOT NULL,
    exploration   TEXT NOT NULL,
    k             INTEGER NOT NULL,
    slate_prob    DOUBLE PRECISION NOT NULL
);
CREATE INDEX requests_user ON requests (user_key);

CREATE TABLE shown (
    request_id TEXT NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    propensity DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE feedback (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    request_id    TEXT NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
    user_key      TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    type          TEXT NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    position      INTEGER NOT NULL,
    propensity    DOUBLE PRECISION NOT NULL,
    model_version TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX feedback_user ON feedback (user_key);
