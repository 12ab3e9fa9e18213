"""The harness's one door to student code: each request starts a student process in a
student cell of its own, and hands the harness its stdio (and control channel).

The harness (``grader_harness``, in a harness cell) connects to a Unix socket that only
harness cells can see, sends one JSON line::

    {"argv": ["./prog"], "cwd": ".", "stdio": "pipes" | "null", "control": false,
     "timeout": 5.0}

and receives ``{"ok": true, "fds": ["stdin", "stdout", "stderr", "control"]}`` with those
file descriptors attached (SCM_RIGHTS), or ``{"ok": false, "error": ...}``. When the
process ends, one more line says how: ``{"exit_code": 0, "signal": null, "timed_out":
false, "over": null, "seconds": 0.01}``. Sending ``{"op": "kill"}`` or closing the
connection ends the process and everything it started; so does the broker closing.

The student process runs in a student cell (``layout.cell_mounts``): the workspace without
the private instructor files, no report paths, no broker socket, its own pid namespace,
and the student uid when the engine is root. Nothing here trusts the harness's request
beyond its shape: it cannot choose the cell, the uid, the mounts or the limits.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.engine.sandbox.cgroups import Group, stage_group
from grader.engine.sandbox.layout import BROKER_SOCKET, Cell, stage_env
from grader.engine.sandbox.tmpfs import capped
from grader.engine.sandbox.watch import Process, start, watch_process
from grader.engine.spec import Cancel
from grader.errors import SandboxError

log = logging.getLogger(__name__)

MAX_LIVE = 8  # student processes one submission may have at once
MAX_STARTS = 100_000  # per submission: a loop that starts processes forever ends here
REQUEST_CAP = 256 * 1024  # bytes of one request line
ARGV_CAP = 1_000  # arguments of one request
JOIN_SECONDS = 5.0


class RequestError(ValueError):
    """A request the broker refuses; the message goes back to the harness."""


@dataclass(frozen=True)
class Request:
    """A checked request: what to run, where in the workspace, with which stdio."""

    argv: tuple[str, ...]
    cwd: str = "."
    pipes: bool = True
    control: bool = False
    timeout: float = 60.0


def parse_request(line: bytes) -> Request:
    """The request in ``line`` (one JSON object), checked field by field."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RequestError("not a JSON object")
    argv = raw.get("argv")
    if not isinstance(argv, list) or not argv or len(argv) > ARGV_CAP:
        raise RequestError(f"argv must be a list of 1 to {ARGV_CAP} strings")
    if not all(isinstance(arg, str) and "\0" not in arg for arg in argv):
        raise RequestError("argv must hold strings without NUL characters")
    cwd = raw.get("cwd", ".")
    parts = cwd.split("/") if isinstance(cwd, str) else [".."]
    if cwd.startswith("/") or ".." in parts or "\0" in cwd:
        raise RequestError("cwd must be a folder inside the workspace (relative, no '..')")
    stdio, control, timeout = (
        raw.get("stdio", "pipes"),
        raw.get("control", False),
        raw.get("timeout", 60.0),
    )
    if stdio not in ("pipes", "null") or not isinstance(control, bool):
        raise RequestError("stdio must be 'pipes' or 'null', control true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise RequestError("timeout must be a number of seconds above 0")
    return Request(
        tuple(argv),
        "/".join(p for p in parts if p not in ("", ".")) or ".",
        stdio == "pipes",
        control,
        float(timeout),
    )


@dataclass
class Tally:
    """What the broker did for one submission (for the debug log)."""

    started: int = 0
    refused: int = 0
    killed_at_limit: int = 0
    over_memory: int = 0
    errors: list[str] = field(default_factory=list)


class Broker:
    """Serves one submission's harness on ``folder/socket`` until closed.

    ``cell`` is the student cell every process starts in; ``deadline`` (monotonic) is the
    latest any of them may run to, whatever a request asks.
    """

    def __init__(
        self, cell: Cell, *, deadline: float, env: dict[str, str], group: int | None = None
    ) -> None:
        assert cell.role == "student"
        self.cell, self.deadline, self.env, self.group = cell, deadline, env, group
        self.folder = Path("/nonexistent")  # made on entry: a short path (sockets allow 107 bytes)
        self.tally = Tally()
        self._lock = threading.Lock()
        self._live: dict[int, Cancel] = {}
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._listener: socket.socket | None = None

    @property
    def socket_path(self) -> Path:
        return self.folder / BROKER_SOCKET

    def __enter__(self) -> Broker:
        self.folder = Path(tempfile.mkdtemp(prefix="grader-broker-"))
        if self.group is not None:  # root: only the harness's uid (its group) gets in
            os.chown(self.folder, 0, self.group)
            self.folder.chmod(0o750)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        self.socket_path.chmod(0o666)  # the harness's uid connects; only harness cells see it
        listener.listen(16)
        self._listener = listener
        accepting = threading.Thread(target=self._accept, name="broker-accept", daemon=True)
        accepting.start()
        self._threads.append(accepting)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, end every live student process, wait for the threads."""
        self._closed.set()
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            for cancel in self._live.values():
                cancel.set()
            threads = list(self._threads)
        give_up = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(max(give_up - time.monotonic(), 0.0))
        with suppress(FileNotFoundError):
            self.socket_path.unlink()
        with suppress(OSError):
            self.folder.rmdir()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            serving = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(serving)
            serving.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                request = parse_request(_read_line(connection))
                self._run(connection, request)
            except RequestError as exc:
                with self._lock:
                    self.tally.refused += 1
                _answer(connection, {"ok": False, "error": str(exc)})
            except (OSError, SandboxError) as exc:  # the harness left, or no sandbox started
                log.info("broker: %s", exc)
                with self._lock:
                    self.tally.errors.append(str(exc))

    def _run(self, connection: socket.socket, request: Request) -> None:
        cancel = Cancel()
        with self._lock:
            if self._closed.is_set():
                raise RequestError("the stage is over")
            if len(self._live) >= MAX_LIVE:
                raise RequestError(f"{MAX_LIVE} student processes are already running")
            if self.tally.started >= MAX_STARTS:
                raise RequestError(f"{MAX_STARTS} student processes were started already")
            self.tally.started += 1
            number = self.tally.started
            self._live[number] = cancel
        try:
            ended = self._start_and_watch(connection, request, cancel)
        finally:
            with self._lock:
                self._live.pop(number, None)
        with self._lock:
            self.tally.killed_at_limit += ended.timed_out
            self.tally.over_memory += ended.over == "memory"
        _answer(connection, {
            "exit_code": ended.exit_code,
            "signal": ended.signal,
            "timed_out": ended.timed_out,
            "over": ended.over,
            "seconds": round(ended.seconds, 3),
        })  # fmt: skip

    def _start_and_watch(self, connection: socket.socket, request: Request, cancel: Cancel) -> Any:
        with capped(self.cell) as cell, stage_group(cell.kind, cell.limits) as group:
            return self._start_in(cell, group, connection, request, cancel)

    def _start_in(
        self,
        cell: Cell,
        group: Group | None,
        connection: socket.socket,
        request: Request,
        cancel: Cancel,
    ) -> Any:
        timeout = max(min(request.timeout, self.deadline - time.monotonic()), 0.01)
        ours, theirs = _Ends(), _Ends()
        try:
            process = self._start(cell, group, request, timeout, ours, theirs)
        finally:
            theirs.close()
        names = ours.names()
        try:
            socket.send_fds(
                connection, [json.dumps({"ok": True, "fds": names}).encode() + b"\n"], ours.fds()
            )
        except OSError:
            cancel.set()
        finally:
            ours.close()
        watching = threading.Thread(target=_until_killed, args=(connection, cancel), daemon=True)
        watching.start()
        return watch_process(cell, process, timeout=timeout, cancel=cancel, group=group)

    def _start(
        self,
        cell: Cell,
        group: Group | None,
        request: Request,
        timeout: float,
        ours: _Ends,
        theirs: _Ends,
    ) -> Process:
        env = dict(self.env)
        if request.pipes:
            theirs.stdin, ours.stdin = os.pipe()
            ours.stdout, theirs.stdout = os.pipe()
            ours.stderr, theirs.stderr = os.pipe()
        if request.control:
            mine, child = socket.socketpair()
            ours.control, theirs.control = mine.detach(), child.detach()
            env["GRADER_HARNESS_FD"] = str(theirs.control)
        argv = list(request.argv)
        if request.cwd != ".":
            argv = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", request.cwd, *argv]
        devnull = subprocess.DEVNULL
        return start(
            cell,
            argv,
            timeout,
            group=group,
            stdin=theirs.stdin if theirs.stdin is not None else devnull,
            stdout=theirs.stdout if theirs.stdout is not None else devnull,
            stderr=theirs.stderr if theirs.stderr is not None else devnull,
            pass_fds=() if theirs.control is None else (theirs.control,),
            env=stage_env(cell, env),
            cwd=str(cell.workspace) if cell.kind == "rlimits" else None,
        )


@dataclass
class _Ends:
    """One side's ends of the pipes and the control channel (file descriptors)."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    control: int | None = None

    def names(self) -> list[str]:
        return [
            name
            for name in ("stdin", "stdout", "stderr", "control")
            if getattr(self, name) is not None
        ]

    def fds(self) -> list[int]:
        return [getattr(self, name) for name in self.names()]

    def close(self) -> None:
        for fd in self.fds():
            with suppress(OSError):
                os.close(fd)
        self.stdin = self.stdout = self.stderr = self.control = None


def _read_line(connection: socket.socket) -> bytes:
    connection.settimeout(10)
    data = b""
    while b"\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise RequestError("the request ended before its newline")
        data += chunk
        if len(data) > REQUEST_CAP:
            raise RequestError(f"the request is longer than {REQUEST_CAP} bytes")
    connection.settimeout(None)
    return data.split(b"\n", 1)[0]


def _until_killed(connection: socket.socket, cancel: Cancel) -> None:
    """Set ``cancel`` when the harness asks for a kill or hangs up."""
    with suppress(OSError):
        while not cancel.is_set():
            data = connection.recv(4096)
            if not data or b"kill" in data:
                break
    cancel.set()


def _answer(connection: socket.socket, message: dict[str, Any]) -> None:
    with suppress(OSError):
        connection.sendall(json.dumps(message).encode() + b"\n")
