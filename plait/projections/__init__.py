"""Read models folded from events: run status, projects, and the audit timeline."""

from plait.projections.projector import Projection, Projector
from plait.projections.projects import ProjectsProjection
from plait.projections.queries import ReadModels
from plait.projections.run_status import RunStatusProjection
from plait.projections.timeline import TimelineProjection


def all_projections() -> list[Projection]:
    return [RunStatusProjection(), ProjectsProjection(), TimelineProjection()]


__all__ = [
    "Projection",
    "Projector",
    "ProjectsProjection",
    "ReadModels",
    "RunStatusProjection",
    "TimelineProjection",
    "all_projections",
]
