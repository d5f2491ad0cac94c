"""DDL of migration 0006: the fenced append, and one active run per project.

- plait_append_fenced is plait_append (0005) with a fence (run id, lease epoch): it locks the
  run's lease row
  (FOR SHARE: a concurrent takeover waits for this append to commit, and every later append
  sees the new epoch) and refuses the append unless the lease still has that epoch and has
  not expired by the database's clock (SQLSTATE PL005).
- Triggers on plait_events keep plait_active_runs, one row per project with an active run,
  in the transaction of the append: a RunStarted on a project stream is refused while the
  project has an active run, a RunEnded unless it ends the project's active run (PL004).
  The store enforces it whatever the callers, their leases or their clocks did.

A migration's DDL never changes after it ships; a change is a new constant and a migration.
"""

from __future__ import annotations

APPEND_SIGNATURE_0006 = (
    "plait_append_fenced(text, integer, text[], text[], integer[], text[], text[], timestamptz,"
    " text, text, bigint)"
)

# The database's clock in seconds since the epoch, as plait_run_leases.expires_at holds it.
PG_NOW = "extract(epoch from clock_timestamp())::double precision"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

PROJECT_PREFIX = "project-"

APPEND_FUNCTION_0006 = r"""
CREATE OR REPLACE FUNCTION plait_append_fenced(
    p_stream text,
    p_expected integer,
    p_event_ids text[],
    p_types text[],
    p_schema_versions integer[],
    p_data text[],
    p_metadata text[],
    p_recorded_at timestamptz,
    p_recorded_text text,
    p_fence_run text,
    p_fence_epoch bigint
) RETURNS SETOF bigint
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    n integer := array_length(p_event_ids, 1);
    current_version integer;
    last_position bigint;
    last_hash text;
    hashes text[];
    stream_part text := length(p_stream) || ':' || p_stream;
    recorded_part text := length(p_recorded_text) || ':' || p_recorded_text;
    version text;
    schema_version text;
    lease_epoch bigint;
    lease_live boolean;
    i integer;
BEGIN
    IF p_fence_run IS NOT NULL THEN
        SELECT l.epoch, l.expires_at > extract(epoch from clock_timestamp())::double precision
            INTO lease_epoch, lease_live
            FROM plait_run_leases l WHERE l.run_id = p_fence_run FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'PL005', MESSAGE = 'the run has no lease';
        END IF;
        IF lease_epoch <> p_fence_epoch THEN
            RAISE EXCEPTION USING ERRCODE = 'PL005',
                MESSAGE = 'the lease was taken over (epoch ' || lease_epoch || ')';
        END IF;
        IF NOT lease_live THEN
            RAISE EXCEPTION USING ERRCODE = 'PL005',
                MESSAGE = 'the lease expired by the database clock';
        END IF;
    END IF;

    LOCK TABLE plait_events IN EXCLUSIVE MODE;

    SELECT (SELECT COALESCE(max(e.stream_version), 0) FROM plait_events e
            WHERE e.stream_id = p_stream),
           COALESCE(last.position, 0), COALESCE(last.hash, repeat('0', 64))
        INTO current_version, last_position, last_hash
        FROM (SELECT 1) AS one
        LEFT JOIN (SELECT e.position, e.hash FROM plait_events e
                   ORDER BY e.position DESC LIMIT 1) AS last ON true;
    IF p_expected IS NOT NULL AND p_expected <> current_version THEN
        RAISE EXCEPTION USING ERRCODE = 'PL001',
            MESSAGE = 'wrong expected version', DETAIL = current_version::text;
    END IF;

    FOR i IN 1..n LOOP
        version := (current_version + i)::text;
        schema_version := p_schema_versions[i]::text;
        last_hash := encode(sha256(convert_to(last_hash || encode(sha256(convert_to(
            stream_part ||
            length(version) || ':' || version ||
            length(p_event_ids[i]) || ':' || p_event_ids[i] ||
            length(p_types[i]) || ':' || p_types[i] ||
            length(schema_version) || ':' || schema_version ||
            length(p_data[i]) || ':' || p_data[i] ||
            length(p_metadata[i]) || ':' || p_metadata[i] ||
            recorded_part,
            'UTF8')), 'hex'), 'UTF8')), 'hex');
        hashes[i] := last_hash;
    END LOOP;

    INSERT INTO plait_events (position, stream_id, stream_version, event_id, type,
                              schema_version, data, metadata, recorded_at, hash)
    SELECT last_position + u.g, p_stream, current_version + u.g, u.event_id, u.type,
           u.schema_version, u.data, u.metadata, p_recorded_at, u.hash
    FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_metadata, hashes)
         WITH ORDINALITY AS u(event_id, type, schema_version, data, metadata, hash, g);

    PERFORM pg_notify('plait_events', (last_position + n)::text);
    RETURN QUERY SELECT last_position + g FROM generate_series(1, n) AS g;
END
$$;
"""

PROJECT_RUNS_TABLE = """
CREATE TABLE plait_active_runs (
    project_id varchar(200) PRIMARY KEY,
    run_id varchar(100) NOT NULL
)
"""

PG_PROJECT_RUNS_GUARD = r"""
CREATE OR REPLACE FUNCTION plait_project_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    project text := substr(NEW.stream_id, 9);
    run text := NEW.data::json->>'run_id';
    active text;
BEGIN
    SELECT a.run_id INTO active FROM plait_active_runs a WHERE a.project_id = project;
    IF NEW.type = 'RunStarted' THEN
        IF active IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'PL004',
                MESSAGE = 'the project has an active run (' || active || ')';
        END IF;
        INSERT INTO plait_active_runs (project_id, run_id) VALUES (project, run);
    ELSE
        IF active IS DISTINCT FROM run THEN
            RAISE EXCEPTION USING ERRCODE = 'PL004',
                MESSAGE = 'run ' || COALESCE(run, '?') || ' is not the project''s active run';
        END IF;
        DELETE FROM plait_active_runs WHERE project_id = project;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER plait_events_project_runs BEFORE INSERT ON plait_events FOR EACH ROW
    WHEN (NEW.type IN ('RunStarted', 'RunEnded') AND NEW.stream_id LIKE 'project-%')
    EXECUTE FUNCTION plait_project_runs();
"""

# SQLite's RAISE takes a literal message; the store maps these two to ProjectRunConflict.
SQLITE_RUN_ACTIVE = "plait: the project has an active run"
SQLITE_RUN_NOT_ACTIVE = "plait: the run is not the project's active run"

# One trigger, not one per event type: a trigger runs as a sub-program per inserted row, and
# two of them cost every append of ten events 15% (bench/store.py).
SQLITE_PROJECT_RUNS_GUARD = [
    f"""CREATE TRIGGER plait_events_project_runs BEFORE INSERT ON plait_events
       WHEN NEW.type IN ('RunStarted', 'RunEnded') AND substr(NEW.stream_id, 1, 8) = 'project-'
       BEGIN
         SELECT RAISE(ABORT, '{SQLITE_RUN_ACTIVE}') WHERE NEW.type = 'RunStarted' AND EXISTS (
             SELECT 1 FROM plait_active_runs WHERE project_id = substr(NEW.stream_id, 9));
         SELECT RAISE(ABORT, '{SQLITE_RUN_NOT_ACTIVE.replace("'", "''")}')
             WHERE NEW.type = 'RunEnded' AND NOT EXISTS (
             SELECT 1 FROM plait_active_runs WHERE project_id = substr(NEW.stream_id, 9)
             AND run_id = json_extract(NEW.data, '$.run_id'));
         INSERT INTO plait_active_runs (project_id, run_id)
             SELECT substr(NEW.stream_id, 9), json_extract(NEW.data, '$.run_id')
             WHERE NEW.type = 'RunStarted';
         DELETE FROM plait_active_runs
             WHERE NEW.type = 'RunEnded' AND project_id = substr(NEW.stream_id, 9);
       END""",
]
