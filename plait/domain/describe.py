"""One line of essentials for a stored event: the task, the reason, the commit, the files,
the failing tests. `plait history` prints it and the history API carries it, so a reader
of either sees the same words.

It reads the stored payload (a mapping), not the event class: a history holds events of
older schema versions too, and a line must never fail to render.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait.domain.failures import named_failures

Data = Mapping[str, Any]
LIST_LIMIT = 5
TEXT_LIMIT = 160


def describe(event_type: str, data: Data) -> str:
    """The essentials of one event, '' for an event type this version does not know."""
    render = _RENDER.get(event_type)
    if render is None:
        return ""
    try:
        return _clip(render(data))
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""  # an odd payload: the type and the JSON still say what happened


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def short(sha: object) -> str:
    return str(sha or "")[:12]


def some(items: Sequence[object] | None, limit: int = LIST_LIMIT) -> str:
    listed = [str(item) for item in items or ()]
    shown = ", ".join(listed[:limit])
    return f"{shown} and {len(listed) - limit} more" if len(listed) > limit else shown


def first_line(text: object) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def gist(text: object) -> str:
    """A message in one line: its first line and, when there are more, its last one (a
    failure's `command failed (exit status 1): ...` first, the error it printed last)."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0]} … {lines[-1]}"


def _task(d: Data) -> str:
    attempt = d.get("attempt")
    return f"task {d.get('task_id')}" + (f" attempt {attempt}" if attempt else "")


def _failing(d: Data, key: str = "failed_tests") -> str:
    """The failing tests: its JUnit report's, else those its output names."""
    names = named_failures(d.get(key) or (), str(d.get("output_tail") or ""))
    return f"; failing: {some(names)}" if names else ""


def _tests(verdict: str) -> Callable[[Data], str]:
    def render(d: Data) -> str:
        took = f", {float(d['duration']):.1f} s" if d.get("duration") else ""
        return (
            f"batch {d.get('batch_id')}: tests {verdict} on {short(d.get('commit'))}"
            f" (exit {d.get('exit_code')}{took}){_failing(d) if verdict == 'failed' else ''}"
        )

    return render


def _command(d: Data) -> str:
    if d.get("agent"):
        return " ".join(filter(None, (d["agent"], d.get("agent_version"), d.get("model"))))
    command = d.get("command") or []
    return shlex.join(str(c) for c in command)


def _agent_report(d: Data) -> str:
    cost = d.get("cost_usd")
    spent = f", ${float(cost):.4f}" if cost is not None else ""
    error = f"; error: {first_line(d['error'])}" if d.get("error") else ""
    return (
        f"{_task(d)}: {d.get('agent')} {d.get('model') or ''} tokens "
        f"{d.get('tokens_in') or 0}/{d.get('tokens_out') or 0}{spent}{error}"
    )


def _succeeded(d: Data) -> str:
    files = d.get("changed_files") or []
    if not d.get("commit"):
        return f"{_task(d)}: succeeded without a change"
    return f"{_task(d)}: commit {short(d['commit'])}, {len(files)} file(s): {some(files)}"


def _failed(d: Data) -> str:
    again = " (will retry)" if d.get("will_retry") else ""
    return f"{_task(d)}: exit {d.get('exit_code')}{again}: {gist(d.get('error'))}"


def _completed(d: Data) -> str:
    if d.get("not_landed_reason") or d.get("land_command"):
        why = d.get("not_landed_reason") or d.get("land_command")
        return f"result {short(d.get('landed_commit'))} kept on {d.get('landed_on')}: {why}"
    return f"result {short(d.get('landed_commit'))} on {d.get('landed_on')}"


def _batch_end(d: Data) -> str:
    errors = d.get("errors") or []
    return f"batch {d.get('batch_id')}: {d.get('merge_status')}" + (
        f": {first_line(errors[0])}" if errors else ""
    )


_RENDER: dict[str, Callable[[Data], str]] = {
    "ProjectRegistered": lambda d: f"{d.get('name')} at {d.get('repo_path')}",
    "ProjectDeleted": lambda d: f"project {d.get('project_id')} deleted",
    "PlanAccepted": lambda d: (
        f"{len(d.get('plan', {}).get('tasks') or [])} tasks in "
        f"{len(d.get('batches') or [])} batches, {d.get('mode')} ({d.get('source') or 'api'})"
    ),
    "RunStarted": lambda d: f"run {d.get('run_id')}",
    "RunEnded": lambda d: f"run {d.get('run_id')}: {d.get('outcome')}",
    "RunCreated": lambda d: (
        f"base {d.get('base_branch')} @ {short(d.get('base_commit'))}, "
        f"{sum(len(b.get('task_ids') or []) for b in d.get('batches') or [])} tasks in "
        f"{len(d.get('batches') or [])} batches, at most {d.get('max_concurrency')} at once"
    ),
    "ExecutionModeSelected": lambda d: f"{d.get('mode')}: {d.get('reason')}",
    "BaselineTested": lambda d: (
        f"tests on the base {'passed' if d.get('passed') else 'failed'}"
        f" (exit {d.get('exit_code')}){'' if d.get('passed') else _failing(d)}"
    ),
    "BatchStarted": lambda d: f"batch {d.get('batch_id')}: {some(d.get('task_ids'), 10)}",
    "WorktreeCreated": lambda d: f"{_task(d)}: {d.get('branch')} at {d.get('path')}",
    "TaskStarted": lambda d: f"{_task(d)}: {_command(d)}",
    "TaskOutput": lambda d: f"{_task(d)} {d.get('stream')}: {first_line(d.get('text'))}",
    "AgentReported": _agent_report,
    "TaskSucceeded": _succeeded,
    "TaskChangedNothing": lambda d: f"{_task(d)}: exited 0 and changed nothing",
    "TaskFailed": _failed,
    "TaskInterrupted": lambda d: f"{_task(d)}: {d.get('reason') or 'interrupted'}",
    "MergeStarted": lambda d: f"batch {d.get('batch_id')}: merging onto {short(d.get('onto'))}",
    "BranchMerged": lambda d: f"{_task(d)}: merged as {short(d.get('merge_commit'))}",
    "MergeConflicted": lambda d: f"{_task(d)}: conflicts in {some(d.get('files'))}",
    "ConflictResolutionStarted": lambda d: (
        f"{_task(d)}: its agent resolves {some(d.get('files'))} onto {short(d.get('onto'))}"
    ),
    "ConflictResolved": lambda d: f"{_task(d)}: resolved as {short(d.get('commit'))}",
    "ConflictResolutionFailed": lambda d: (
        f"{_task(d)}: not resolved: {first_line(d.get('reason'))}"
    ),
    "TestsPassed": _tests("passed"),
    "TestsFailed": _tests("failed"),
    "TestsFlaky": lambda d: (
        f"batch {d.get('batch_id')}: tests on {short(d.get('commit'))} failed once, then "
        f"passed (flaky){_failing(d)}"
    ),
    "CulpritFound": lambda d: f"{_task(d)}: its branch broke the tests{_failing(d, 'broke_tests')}",
    "BatchLanded": lambda d: (
        f"batch {d.get('batch_id')}: result {short(d.get('before'))} -> {short(d.get('after'))}"
    ),
    "BatchCompleted": _batch_end,
    "BatchFailed": _batch_end,
    "FellBackToSequential": lambda d: (
        f"batch {d.get('batch_id')}: {d.get('reason')}" if d.get("batch_id") else str(d["reason"])
    ),
    "TaskRequeued": lambda d: f"{_task(d)}: {d.get('reason')}",
    "TaskSkipped": lambda d: f"{_task(d)}: {d.get('reason')}",
    "WorktreeRemoved": lambda d: f"{_task(d)}: worktree {d.get('worktree_id')} removed",
    "WorkKept": lambda d: f"{_task(d)}: work kept on {d.get('branch')}: {d.get('reason')}",
    "StopRequested": lambda d: str(d.get("reason") or ""),
    "RunStopped": lambda d: str(d.get("reason") or ""),
    "RunResumed": lambda d: str(d.get("reason") or ""),
    "LandRequested": lambda d: str(d.get("reason") or ""),
    "RunCompleted": _completed,
    "RunFailed": lambda d: gist(d.get("error")),
}
