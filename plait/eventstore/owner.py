"""Who holds a lease: an owner id that tells processes apart across hosts and containers.

An owner id is "host/boot id/PID namespace/PID/start time/nonce":
- the boot id (/proc/sys/kernel/random/boot_id) names one boot of one kernel, so two hosts,
  or one host before and after a reboot, never look alike, whatever their hostnames;
- the PID namespace (the inode of /proc/self/ns/pid) tells two containers on one kernel
  apart: their PIDs are numbered independently, so a PID means nothing across them;
- the start time (field 22 of /proc/self/stat, in clock ticks since boot) tells a PID that
  was reused from the process that held it;
- the nonce tells two lease stores of one process apart.
The host name is only there for people reading it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SEPARATOR = "/"


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str
    pid_namespace: str
    pid: int
    start_time: str
    nonce: str

    def __str__(self) -> str:
        fields = (self.host, self.boot_id, self.pid_namespace, str(self.pid), self.start_time)
        return SEPARATOR.join((*fields, self.nonce))

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner a lease row names; None for an id of an older plait ("host:pid:nonce")."""
        parts = text.split(SEPARATOR)
        if len(parts) != 6 or not parts[3].isdigit():
            return None
        host, boot_id, namespace, pid, start, nonce = parts
        return cls(host, boot_id, namespace, int(pid), start, nonce)


def this_process() -> Owner:
    host = socket.gethostname().replace(SEPARATOR, "_")[:64]
    pid = os.getpid()
    nonce = uuid.uuid4().hex[:8]
    return Owner(host, boot_id(), pid_namespace(), pid, start_time(pid) or "?", nonce)


def boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown-boot"


def pid_namespace() -> str:
    try:
        return str(os.stat(PROC / "self/ns/pid").st_ino)
    except OSError:
        return "unknown-ns"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot; None if there is no such process."""
    state = _stat_fields(pid)
    return None if state is None or state[0] == "Z" else state[19]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3, the state, comes first)."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def is_dead(owner_text: str, me: Owner) -> bool:
    """True only if `owner_text` is provably a process that no longer exists: one on this boot
    of this kernel, in this PID namespace, whose PID is gone, a zombie, or reused by a
    process that started later. Anything else (another host, another container, an id this
    plait cannot read) may be alive: its lease is left to expire."""
    owner = Owner.parse(owner_text)
    if owner is None or (owner.boot_id, owner.pid_namespace) != (me.boot_id, me.pid_namespace):
        return False
    if owner.boot_id.startswith("unknown") or owner.pid_namespace.startswith("unknown"):
        return False
    if owner.pid == me.pid:
        return owner.start_time != me.start_time  # this PID now is another process: me
    return start_time(owner.pid) != owner.start_time
