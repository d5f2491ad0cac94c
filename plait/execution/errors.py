"""Errors of the application service, each a case a caller can act on.

ServiceError
 ├── UnknownProject      no such project                          (HTTP 404)
 ├── UnknownRun          no such run                              (HTTP 404)
 ├── UnknownTask         no such task, attempt or diff in a run   (HTTP 404)
 ├── InvalidId           an id that could reach git or a path     (HTTP 400)
 ├── NotARepository      a project path that is not a git repo    (HTTP 400)
 ├── RepositoryChanged   the registered repository is gone or another one (HTTP 409)
 ├── NoPlan              start before any plan was accepted       (HTTP 400)
 ├── NoBaseBranch        no base branch given and HEAD detached   (HTTP 400)
 ├── AgentsUnavailable   an agent CLI is missing or of an unknown version (HTTP 400)
 ├── SandboxUnavailable  the plan's sandbox is not installed       (HTTP 400)
 ├── BadWorktreeRoot     a worktree root inside the repository    (HTTP 400)
 ├── RunAlreadyActive    a second start while a run is active     (HTTP 409)
 ├── NotResumable        resume of a run that cannot continue     (HTTP 409)
 └── NoActiveRun         stop while nothing runs                  (HTTP 409)
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a caller of the service can act on."""


class UnknownProject(ServiceError):
    pass


class UnknownRun(ServiceError):
    pass


class UnknownTask(ServiceError):
    pass


class InvalidId(ServiceError):
    pass


class NotARepository(ServiceError):
    pass


class RepositoryChanged(ServiceError):
    """The path a project was registered at no longer holds that repository."""


class NoPlan(ServiceError):
    pass


class NoBaseBranch(ServiceError):
    pass


class AgentsUnavailable(ServiceError):
    pass


class SandboxUnavailable(ServiceError):
    pass


class BadWorktreeRoot(ServiceError):
    pass


class RunAlreadyActive(ServiceError):
    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class NotResumable(ServiceError):
    pass


class NoActiveRun(ServiceError):
    pass
