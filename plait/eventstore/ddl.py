"""DDL the migrations install: the PostgreSQL append function and the immutability guards.

The append function does the whole append in one round trip: it takes a table lock (so global
positions are handed out in commit order and a tailing reader never skips one), checks the
expected version, computes the hash chain with the same formula as plait.eventstore.hashing,
inserts, and notifies listeners. A migration's DDL never changes after it ships; a change is
a new constant and a new migration.
"""

from __future__ import annotations

# How ALTER FUNCTION and DROP FUNCTION name plait_append (its argument types).
APPEND_SIGNATURE = (
    "plait_append(text, integer, text[], text[], integer[], text[], text[], timestamptz, text)"
)

APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION plait_append(
    p_stream text,
    p_expected integer,
    p_event_ids text[],
    p_types text[],
    p_schema_versions integer[],
    p_data text[],
    p_metadata text[],
    p_recorded_at timestamptz,
    p_recorded_text text
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    n integer := array_length(p_event_ids, 1);
    current_version integer;
    last_position bigint;
    last_hash text;
    hashes text[] := '{}';
    i integer;
BEGIN
    LOCK TABLE plait_events IN EXCLUSIVE MODE;

    IF EXISTS (SELECT 1 FROM plait_events WHERE event_id = ANY(p_event_ids)) THEN
        IF (SELECT count(*) FROM plait_events
            WHERE event_id = ANY(p_event_ids) AND stream_id = p_stream) = n THEN
            RETURN QUERY SELECT e.position FROM plait_events e
                WHERE e.event_id = ANY(p_event_ids) ORDER BY e.position;
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'PL002',
            MESSAGE = 'some of these event ids are already stored';
    END IF;

    SELECT COALESCE(max(stream_version), 0) INTO current_version
        FROM plait_events WHERE stream_id = p_stream;
    IF p_expected IS NOT NULL AND p_expected <> current_version THEN
        RAISE EXCEPTION USING ERRCODE = 'PL001',
            MESSAGE = 'wrong expected version', DETAIL = current_version::text;
    END IF;

    SELECT e.position, e.hash INTO last_position, last_hash
        FROM plait_events e ORDER BY e.position DESC LIMIT 1;
    IF NOT FOUND THEN
        last_position := 0;
        last_hash := repeat('0', 64);
    END IF;

    -- The chain step of plait.eventstore.hashing: sha256(previous + sha256(fields)).
    FOR i IN 1..n LOOP
        last_hash := encode(sha256(convert_to(last_hash || encode(sha256(convert_to(
            length(p_stream) || ':' || p_stream ||
            length((current_version + i)::text) || ':' || (current_version + i)::text ||
            length(p_event_ids[i]) || ':' || p_event_ids[i] ||
            length(p_types[i]) || ':' || p_types[i] ||
            length(p_schema_versions[i]::text) || ':' || p_schema_versions[i]::text ||
            length(p_data[i]) || ':' || p_data[i] ||
            length(p_metadata[i]) || ':' || p_metadata[i] ||
            length(p_recorded_text) || ':' || p_recorded_text,
            'UTF8')), 'hex'), 'UTF8')), 'hex');
        hashes := hashes || last_hash;
    END LOOP;

    INSERT INTO plait_events (position, stream_id, stream_version, event_id, type,
                              schema_version, data, metadata, recorded_at, hash)
    SELECT last_position + g, p_stream, current_version + g, p_event_ids[g], p_types[g],
           p_schema_versions[g], p_data[g], p_metadata[g], p_recorded_at, hashes[g]
    FROM generate_series(1, n) AS g;

    PERFORM pg_notify('plait_events', (last_position + n)::text);
    RETURN QUERY SELECT last_position + g FROM generate_series(1, n) AS g;
END
$$;
"""

# Migration 0005: the same function, leaner on the server (about 15% of its time):
# - no up-front lookup of the event ids: the unique index refuses a repeated id, and the client
#   then tells a retry from a conflict (SqlEventStore._append_postgres), as on SQLite;
# - the version and the last event in one statement;
# - the per-stream and per-append parts of the hashed text built once, not per event;
# - the rows inserted from one unnest() pass, not by subscripting every array per row;
# - enable_seqscan = off (0004's plan hint) is part of the definition, since CREATE OR REPLACE
#   resets a function's settings.
APPEND_FUNCTION_0005 = r"""
CREATE OR REPLACE FUNCTION plait_append(
    p_stream text,
    p_expected integer,
    p_event_ids text[],
    p_types text[],
    p_schema_versions integer[],
    p_data text[],
    p_metadata text[],
    p_recorded_at timestamptz,
    p_recorded_text text
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
    i integer;
BEGIN
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

IMMUTABILITY_GUARD = r"""
CREATE OR REPLACE FUNCTION plait_events_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PL003',
        MESSAGE = 'plait_events is append-only: ' || TG_OP || ' is refused';
END
$$;
CREATE TRIGGER plait_events_no_update BEFORE UPDATE OR DELETE ON plait_events
    FOR EACH ROW EXECUTE FUNCTION plait_events_are_immutable();
CREATE TRIGGER plait_events_no_truncate BEFORE TRUNCATE ON plait_events
    FOR EACH STATEMENT EXECUTE FUNCTION plait_events_are_immutable();
"""

SQLITE_IMMUTABILITY_GUARD = [
    """CREATE TRIGGER plait_events_no_update BEFORE UPDATE ON plait_events
       BEGIN SELECT RAISE(ABORT, 'plait_events is append-only: UPDATE is refused'); END""",
    """CREATE TRIGGER plait_events_no_delete BEFORE DELETE ON plait_events
       BEGIN SELECT RAISE(ABORT, 'plait_events is append-only: DELETE is refused'); END""",
]
