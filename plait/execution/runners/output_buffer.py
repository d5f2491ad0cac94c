"""Turns a task's output into bounded TaskOutput events.

A task may print megabytes: chunks are coalesced (flushed when large enough, or after a short
pause), and after a per-attempt budget only a note that points at the full log on disk is
recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class OutputBuffer:
    def __init__(
        self,
        emit: Callable[[str, str], Awaitable[None]],
        *,
        chunk_bytes: int,
        flush_seconds: float,
        budget_bytes: int,
        log_path: str,
    ) -> None:
        self._emit = emit
        self._chunk = chunk_bytes
        self._flush_seconds = flush_seconds
        self._budget = budget_bytes
        self._log_path = log_path
        self._pending: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._sizes = {"stdout": 0, "stderr": 0}
        self._emitted = 0
        self._truncated = False
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def add(self, stream: str, text: str) -> None:
        if self._truncated:
            return
        self._pending[stream].append(text)
        self._sizes[stream] += len(text)
        if self._sizes[stream] >= self._chunk:
            await self._flush(stream)
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._flush_seconds, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        for stream in ("stdout", "stderr"):
            await self._flush(stream)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()

    async def _flush(self, stream: str) -> None:
        if not self._pending[stream] or self._truncated:
            return
        text = "".join(self._pending[stream])
        self._pending[stream].clear()
        self._sizes[stream] = 0
        room = self._budget - self._emitted
        if len(text) > room:
            self._truncated = True
            text = text[:room] + f"\n[plait: output truncated; the full log is {self._log_path}]\n"
        self._emitted += len(text)
        await self._emit(stream, text)
