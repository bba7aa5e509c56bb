-- 003: the same state machine, checked without IN lists.
--
-- SQLite evaluates `x IN ('a', 'b', 'c')` in a CHECK constraint or a
-- trigger by building a temporary index of the list, afresh for every row
-- written: four of them per delivered event (claim and outcome each run
-- the CHECK and the trigger), a quarter of the relay's work. Chains of `=`
-- accept and refuse exactly the same rows.
--
-- The CHECK is rewritten in place, as SQLite's documentation on ALTER TABLE
-- allows for a constraint change that leaves the stored rows valid (no
-- table copy, so no cascade on delivery_attempts); the trigger is dropped
-- and created again, which also makes every connection reload the schema.

PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
       'CHECK (status IN (''pending'', ''sending'', ''delivered'', ''failed''))',
       'CHECK (status = ''pending'' OR status = ''sending'''
       || ' OR status = ''delivered'' OR status = ''failed'')')
 WHERE type = 'table' AND name = 'outbox';
PRAGMA writable_schema = OFF;

DROP TRIGGER outbox_status_move;
CREATE TRIGGER outbox_status_move BEFORE UPDATE OF status ON outbox
    WHEN NOT (NEW.status = OLD.status
              OR (OLD.status = 'pending' AND NEW.status = 'sending')
              OR (OLD.status = 'sending'
                  AND (NEW.status = 'pending' OR NEW.status = 'delivered'
                       OR NEW.status = 'failed'))
              OR (OLD.status = 'failed' AND NEW.status = 'pending'))
BEGIN
    SELECT RAISE(ABORT, 'outbox: status may move only pending -> sending -> pending/delivered/failed, and failed -> pending');
END;

PRAGMA user_version = 3;
