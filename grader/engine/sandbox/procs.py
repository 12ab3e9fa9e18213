"""Reading /proc: a stage's processes, their memory, and killing what is left of them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import NamedTuple

SWEEP_SECONDS = 3.0  # how long leftovers may take to die before it is an engine fault


def processes_of(uid: int) -> list[int]:
    """Live (not zombie) processes whose owner is ``uid``."""
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid == uid and not is_zombie(entry.name):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def is_zombie(pid: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith(("Z", "X"))


def code_layout(pid: int | str) -> list[str]:
    """Where process ``pid``'s code and stack are (stat fields 26-28: startcode, endcode,
    startstack; ``[]`` if it cannot be read): a fork that has not exec'd yet has its
    parent's, which no exec'd program has under ASLR."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[23:26]
    except (OSError, ValueError):
        return []


def stage_processes(uid: int | None, root: int) -> list[int]:
    """The stage's processes: by its uid, or (not root) by descent from ``root``."""
    if uid is not None:
        return processes_of(uid)
    parents: dict[int, int] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                    parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
    family, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sorted(family)


class Memory(NamedTuple):
    """kB of one process: resident anonymous and shared memory (what a memory bomb grows,
    not libraries), and its own peak resident size (VmHWM)."""

    anon: int
    shmem: int
    peak: int


def memory_kb(pid: int) -> Memory:
    """``pid``'s memory now; zeros once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return Memory(0, 0, 0)
    found = {"RssAnon:": 0, "RssShmem:": 0, "VmHWM:": 0}
    for line in lines:
        key = line.split(maxsplit=1)[0] if line else ""
        if key in found:
            found[key] = int(line.split()[1])
    return Memory(found["RssAnon:"], found["RssShmem:"], found["VmHWM:"])


def sweep(uid: int, seconds: float = SWEEP_SECONDS) -> bool:
    """SIGKILL every process of ``uid`` until none is left; False if some outlive ``seconds``."""
    give_up = time.monotonic() + seconds
    while True:
        pids = processes_of(uid)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        if time.monotonic() >= give_up:
            return not processes_of(uid)
        time.sleep(0.01)
