"""Processes seen through /proc (Linux): a process tree, and the files a process writes to."""

from __future__ import annotations

import os


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (those still alive when walked)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def files_open_for_writing(pid: int) -> set[str]:
    """Regular files (not devices, pipes, sockets, /dev/shm) that ``pid`` holds writable."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            flags = int(fields["flags"].strip(), 8)
        except (OSError, ValueError, KeyError):
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and flags & 3:
            found.add(f"{target} (pid {pid}, fd {fd})")
    return found
