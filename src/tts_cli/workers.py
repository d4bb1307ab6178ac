"""Worker processes that never outlive the command that started them.

`die_with_parent(parent_pid)` is called first in every worker pool's initializer (preprocess,
extract-pitch, make-corpus): when the parent dies, even by kill -9 (no chance to shut its pool
down), the worker is killed too instead of waiting forever on its task pipe. On Linux the kernel
does it (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent pid once a second.

Standard library only.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count() where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _set_pdeathsig() -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval_s)


def die_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Make this (worker) process exit when `parent_pid`, the process that started it, is gone."""
    if not (sys.platform.startswith("linux") and _set_pdeathsig()):
        threading.Thread(target=_watch, args=(parent_pid, interval_s), daemon=True, name="die-with-parent").start()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)


__all__ = ["die_with_parent"]
