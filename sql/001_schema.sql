-- 001: the outbox, its attempt log and the provisioning options.
--
-- Producers insert into outbox with nothing but an INSERT; every other
-- column has a default. Timestamps are UTC text 'YYYY-MM-DDTHH:MM:SS.SSSZ'.
-- Each migration runs in one transaction and ends by setting user_version
-- to its own number (the program checks that it did).

CREATE TABLE config (
    cloud_id TEXT NOT NULL DEFAULT 'default',
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (cloud_id, key)
);

CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY,
    cloud_id           TEXT NOT NULL DEFAULT 'default',
    new_smart_number   TEXT NOT NULL,
    network_id         TEXT NOT NULL,
    new_smart_uri      TEXT NOT NULL,
    -- CASE, not AND: json_type() raises an error on malformed JSON, and
    -- only CASE promises that it is not evaluated then. The constraint is
    -- named so that a producer's failed INSERT says what was wrong.
    interested_parties TEXT NOT NULL
        CONSTRAINT interested_parties_is_json_array
        CHECK (CASE WHEN json_valid(interested_parties)
                    THEN json_type(interested_parties) = 'array'
                    ELSE 0 END),
    created_at         TEXT NOT NULL
        DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    status             TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    TEXT,
    last_attempt_at    TEXT,
    http_status        INTEGER,
    error              TEXT,
    delivered_at       TEXT,
    -- The relay's bookkeeping, not for producers:
    -- attempts when the event was last requeued (the budget starts there),
    budget_start       INTEGER NOT NULL DEFAULT 0,
    -- the claim that holds a 'sending' row, and until when.
    claim_token        INTEGER,
    lease_until        TEXT
);

-- The state machine: pending -> sending -> {pending, delivered, failed},
-- and failed -> pending (requeue). The CHECK above names the states; this
-- refuses the moves between them that no part of the relay makes, so a
-- hand-written UPDATE cannot, say, resurrect a delivered event.
CREATE TRIGGER outbox_status_move BEFORE UPDATE OF status ON outbox
    WHEN NOT (NEW.status = OLD.status
              OR (OLD.status = 'pending' AND NEW.status = 'sending')
              OR (OLD.status = 'sending'
                  AND NEW.status IN ('pending', 'delivered', 'failed'))
              OR (OLD.status = 'failed' AND NEW.status = 'pending'))
BEGIN
    SELECT RAISE(ABORT, 'outbox: status may move only pending -> sending -> pending/delivered/failed, and failed -> pending');
END;

-- Due rows, per app, oldest due first: exactly the pending rows, so the cost
-- of a claim does not grow with the delivered history. NULL next_attempt_at
-- means due now; ifnull() puts those first. Queries must spell the
-- expression exactly so for the planner to use the index.
CREATE INDEX outbox_due ON outbox (cloud_id, ifnull(next_attempt_at, ''), id)
    WHERE status = 'pending';

-- Claims whose lease may have run out.
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE status = 'sending';

-- History, newest first.
CREATE INDEX outbox_created ON outbox (created_at, id);

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT,
    UNIQUE (outbox_id, attempt)
);

-- The latest outcome of every event, newest first, for people at sqlite3.
CREATE VIEW delivery_history AS
    SELECT id, cloud_id, new_smart_number, status, attempts, http_status,
           error, created_at, last_attempt_at, delivered_at
      FROM outbox
     ORDER BY created_at DESC, id DESC;

PRAGMA user_version = 1;
