"""Read a child's stdout/stderr into bounded text chunks, a full log file and a short tail."""

from __future__ import annotations

import asyncio
import codecs
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

OutputCallback = Callable[[str, str], Awaitable[None] | None]

TAIL_BYTES = 4096
# A partial line (a progress bar, a prompt) is delivered once the stream has
# been quiet this long, instead of waiting for a newline that may never come.
FLUSH_AFTER = 0.2


def split_chunks(pending: str, max_chunk: int, *, final: bool) -> tuple[list[str], str]:
    """Cut `pending` into chunks of at most `max_chunk` characters, ending at line ends when
    possible. Returns (chunks, remainder); the remainder is a partial line shorter than
    `max_chunk`, or empty when `final`."""
    chunks: list[str] = []
    while pending:
        cut = pending.rfind("\n", 0, max_chunk) + 1
        if cut == 0 and (len(pending) >= max_chunk or final):
            cut = min(len(pending), max_chunk)
        if cut == 0:
            break
        chunks.append(pending[:cut])
        pending = pending[cut:]
    return chunks, pending


class OutputSink:
    """Where both streams' output goes. Memory use is bounded by the tail and one chunk."""

    def __init__(self, on_output: OutputCallback | None, log_path: Path | None) -> None:
        self._on_output = on_output
        # Appended: an attempt's setup command and its task command share its log.
        self._log: BinaryIO | None = open(log_path, "ab") if log_path else None  # noqa: SIM115
        self._tail = bytearray()
        self.bytes_seen = 0
        self.callback_error: BaseException | None = None

    def record(self, data: bytes) -> None:
        self.bytes_seen += len(data)
        if self._log:
            self._log.write(data)
            # Readers follow the file live (`plait logs`, the dashboard): no data in buffers.
            self._log.flush()
        self._tail += data
        del self._tail[:-TAIL_BYTES]

    async def deliver(self, stream: str, text: str) -> None:
        # A failing callback must not stop the draining, or the child blocks on
        # a full pipe; the first error is kept and re-raised by the handle.
        if self._on_output is None or self.callback_error is not None:
            return
        try:
            outcome = self._on_output(stream, text)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as e:
            self.callback_error = e

    def tail(self) -> str:
        return self._tail.decode(errors="replace")

    def close(self) -> None:
        if self._log:
            self._log.close()


async def _read(reader: asyncio.StreamReader, size: int, idle: bool) -> bytes | None:
    """Next bytes (b"" at EOF), or None when `idle` is asked for and nothing came in time."""
    if not idle:
        return await reader.read(size)
    try:
        return await asyncio.wait_for(reader.read(size), FLUSH_AFTER)
    except TimeoutError:
        return None


async def pump(stream: str, reader: asyncio.StreamReader, sink: OutputSink, max_chunk: int) -> None:
    """Copy one stream into `sink` until EOF, in chunks of at most `max_chunk` characters."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        data = await _read(reader, max_chunk, idle=bool(pending))
        if data:
            sink.record(data)
            pending += decoder.decode(data)
        else:
            pending += decoder.decode(b"", final=data == b"")
        chunks, pending = split_chunks(pending, max_chunk, final=not data)
        for chunk in chunks:
            await sink.deliver(stream, chunk)
        if data == b"":
            return
