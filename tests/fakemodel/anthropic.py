"""Placeholder: filled in by the anthropic work."""

from __future__ import annotations

from starlette.routing import Route

from tests.fakemodel.server import Recorder


def routes(recorder: Recorder) -> list[Route]:
    return []
