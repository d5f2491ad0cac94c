"""Domain errors.

DomainError
 ├── PlanError            a plan was refused; `problems` lists every reason
 └── InvalidTransition    a lifecycle trigger that the entity's state does not allow
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises."""


class PlanError(DomainError):
    """A plan is invalid. Each entry of `problems` names the task (if any) and the problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid plan:\n" + "\n".join(f"  - {p}" for p in self.problems))


class InvalidTransition(DomainError):
    """A trigger that is not allowed from the entity's current state."""

    def __init__(self, entity: str, state: str, trigger: str) -> None:
        self.entity = entity
        self.state = state
        self.trigger = trigger
        super().__init__(f"{entity}: cannot {trigger!r} from state {state!r}")
