"""A one-line description of the machine, printed beside every figure."""

from __future__ import annotations

import os
import platform
import subprocess


def describe() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{git.stdout.strip()}, {platform.system()} {platform.release()}"
    )
