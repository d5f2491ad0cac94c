"""Takeover after a SIGKILL: how long a run goes undriven when its `plait serve` dies.

    python -m bench.takeover [--rounds 10] [--no-record]

Each round: a fresh PostgreSQL schema, two real `plait serve` processes in their own UTS
and PID namespaces (tests/reliability/servers.py), a run started on the first with one
task that waits; once the task runs, the first server is SIGKILLed. Measured from the
SIGKILL to the other server's RunResumed (by the event's recorded time, the database's
clock being read back by the same host), and to its new attempt's TaskStarted. Nobody
calls the API after the kill. The bound is the lease TTL plus the takeover interval
(docs/reliability.md, "Several servers"); the lease settings are the tests' short ones
(servers.LEASES), since the time is the TTL's and the figure scales with it.
Needs root (unshare) and the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from bench.results import append_section
from plait.eventstore import SqlEventStore
from tests.reliability import servers

PG = "postgresql://postgres@127.0.0.1:5432/test"


def one_round(root: Path) -> tuple[float, float]:
    schema = f"plait_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        PG.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    store = SqlEventStore(url)
    try:
        repo, gate, plan = servers.make_project(root)
        one_task = yaml.safe_load(plan.read_text())
        one_task["tasks"] = one_task["tasks"][:1]
        plan.write_text(yaml.safe_dump(one_task))
        with servers.servers(url, root, "first", "second") as (first, _second):
            project_id = servers.register(first, repo, plan)
            run_id = servers.start(first, project_id)
            servers.wait_for("the task", lambda: servers.started(gate, "first"))
            killed = datetime.now(UTC)
            first.kill_plait()
            resumed = servers.wait_for(
                "the takeover",
                lambda: [e for e in servers.events(store, run_id) if e.type == "RunResumed"],
            )[0]
            again = servers.wait_for(
                "the new attempt",
                lambda: [
                    e
                    for e in servers.events(store, run_id)
                    if e.type == "TaskStarted" and e.position > resumed.position
                ],
            )[0]
            (gate / "release").write_text("")
            servers.wait_for("the end", lambda: servers.ended(store, project_id, run_id))
        return (
            (resumed.recorded_at - killed).total_seconds(),
            (again.recorded_at - killed).total_seconds(),
        )
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    if not servers.unshare_works():
        raise SystemExit("needs root and unshare")
    ttl = float(servers.LEASES["PLAIT_LEASE_TTL"])
    every = float(servers.LEASES["PLAIT_TAKEOVER_EVERY"])
    bound = ttl + every
    resumed, restarted = [], []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="plait-takeover-") as tmp:
            took, again = one_round(Path(tmp))
        resumed.append(took)
        restarted.append(again)
        print(f"round {n + 1}: RunResumed after {took:.2f} s, the task again after {again:.2f} s")
        time.sleep(0.1)
    table = [
        "| from the SIGKILL to | median s | max s | min s | median / bound |",
        "|---|---|---|---|---|",
    ]
    for name, values in (("RunResumed", resumed), ("the task's new attempt", restarted)):
        table.append(
            f"| {name} | {statistics.median(values):.2f} | {max(values):.2f} | "
            f"{min(values):.2f} | {statistics.median(values) / bound:.2f} |"
        )
    verdict = "met" if max(resumed) <= bound else "MISSED"
    print("\n".join(table))
    print(f"bound (TTL {ttl:g} s + takeover every {every:g} s): {bound:g} s: {verdict}")
    if not args.no_record:
        append_section(
            "Takeover after a SIGKILL (several servers)",
            f"python -m bench.takeover --rounds {args.rounds}",
            table,
            [
                f"{args.rounds} rounds. Lease TTL {ttl:g} s, renewal every "
                f"{servers.LEASES['PLAIT_LEASE_RENEW_EVERY']} s, a takeover pass every "
                f"{every:g} s: the bound is {bound:g} s, and the worst round is {verdict} "
                f"({max(resumed):.2f} s). The other server cannot tell that a holder in "
                "another PID namespace died, so it waits for the lease to expire by the "
                "database's clock: the time is the TTL plus up to one pass, and scales with "
                "the TTL (defaults 30 s + 5 s)."
            ],
        )


if __name__ == "__main__":
    main()
