-- 003: nothing to change on PostgreSQL. sql/003 rewrites SQLite's status
-- checks without IN lists, which SQLite evaluates by building an index per
-- row; PostgreSQL evaluates the lists as they are. The number is kept in
-- step with sql/, so that both engines report the same schema version.

UPDATE schema_version SET version = 3;
