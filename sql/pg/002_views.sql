-- 002: views for operators at psql, and indexes for stats and purge; the
-- same as sql/002_views.sql.

-- Attempts by time: `smartrelay stats` counts the last minute and hour of
-- attempts, which without it would read the whole attempt log.
CREATE INDEX delivery_attempts_started ON delivery_attempts (started_at);

-- Finished events by the time their age counts from (contract 7.9:
-- delivered_at, else last_attempt_at, else created_at), so that a purge
-- reads only what it deletes. Queries must spell the expression exactly so
-- for the planner to use the index.
CREATE INDEX outbox_finished
    ON outbox (coalesce(delivered_at, last_attempt_at, created_at), id)
    WHERE status IN ('delivered', 'failed');

-- Every event with its latest attempt (NULLs when none was made yet),
-- newest event first.
CREATE VIEW delivery_latest AS
    SELECT o.id, o.cloud_id, o.new_smart_number, o.status, o.attempts,
           a.started_at AS last_started_at, a.duration_ms AS last_duration_ms,
           a.http_status AS last_http_status, a.error AS last_error,
           o.created_at, o.next_attempt_at, o.delivered_at
      FROM outbox AS o
      LEFT JOIN delivery_attempts AS a
        ON a.outbox_id = o.id AND a.attempt = o.attempts
     ORDER BY o.created_at DESC, o.id DESC;

-- How many events each app has in each state, and the oldest of them.
CREATE VIEW queue_depth AS
    SELECT cloud_id, status, count(*) AS events,
           min(created_at) AS oldest_created_at
      FROM outbox
     GROUP BY cloud_id, status
     ORDER BY cloud_id, status;

-- Failed events and why, most recently failed first.
CREATE VIEW delivery_failures AS
    SELECT id, cloud_id, new_smart_number, attempts, http_status, error,
           created_at, coalesce(last_attempt_at, created_at) AS failed_at
      FROM outbox
     WHERE status = 'failed'
     ORDER BY failed_at DESC, id DESC;

UPDATE schema_version SET version = 2;
