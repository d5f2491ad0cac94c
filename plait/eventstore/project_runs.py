"""`verify`'s check of the project streams' lifecycle: one run at a time per project.

Every RunStarted on a project stream opens the project's active run and exactly one RunEnded
closes it; a run resumed after it ended starts (and ends) again. The store enforces this on
append (ddl_0006's triggers); this check finds a history that breaks it anyway: one written
before the enforcement, or by hand with the triggers dropped. Runs still active at the end
of the history are fine: they are running, or their driver died and they await takeover.
"""

from __future__ import annotations

from dataclasses import dataclass

from plait.domain.events import ProjectRegistered, RunEnded, RunStarted
from plait.eventstore.interface import EventStore
from plait.eventstore.streams import PROJECT_PREFIX


@dataclass(frozen=True)
class ProjectRunsReport:
    ok: bool
    starts: int
    first_bad_position: int | None = None
    problem: str | None = None


def check_project_runs(store: EventStore, page_size: int = 5000) -> ProjectRunsReport:
    active: dict[str, str] = {}  # project -> its active run
    ended: dict[str, set[str]] = {}  # project -> runs ended and not started since
    starts = 0
    after = 0
    while page := store.read_all(after, page_size):
        for stored in page:
            after = stored.position
            if stored.type not in (RunStarted.TYPE, RunEnded.TYPE):
                continue
            if not stored.stream_id.startswith(PROJECT_PREFIX):
                continue
            project = stored.stream_id[len(PROJECT_PREFIX) :]
            run_id = str(stored.data.get("run_id"))
            current = active.get(project)
            problem = None
            if stored.type == RunStarted.TYPE:
                starts += 1
                if current is not None:
                    problem = f"run {run_id} started while run {current} was active: runs overlap"
                active[project] = run_id
                ended.setdefault(project, set()).discard(run_id)
            elif current == run_id:
                del active[project]
                ended.setdefault(project, set()).add(run_id)
            elif run_id in ended.get(project, set()):
                problem = f"run {run_id} ended twice (a second RunEnded)"
            else:
                problem = f"run {run_id} ended, but it was not the active run"
            if problem is not None:
                return ProjectRunsReport(
                    False, starts, stored.position, f"project {project}: {problem}"
                )
    return ProjectRunsReport(True, starts)


def registered_repositories(store: EventStore, page_size: int = 5000) -> list[str]:
    """Every repository path a project was registered with, in order, once each."""
    paths: dict[str, None] = {}
    after = 0
    while page := store.read_all(after, page_size):
        for stored in page:
            if stored.type == ProjectRegistered.TYPE:
                paths.setdefault(str(stored.data.get("repo_path")), None)
        after = page[-1].position
    return list(paths)
