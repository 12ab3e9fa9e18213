"""grader_harness: instructor tests call the student's code in a process of its own.

The student's code never runs in the process that imports the instructor's tests and
writes the test report. Tests read like ordinary pytest tests::

    import grader_harness as harness

    solution = harness.module("solution")        # the student's solution.py

    def test_word_count():
        assert solution.word_count("a b a") == 3   # plain data in, plain data out

    def test_empty_text_is_refused():
        with harness.raises("ValueError"):
            solution.word_count(None)

    def test_main_prints_the_sum():
        call = solution.main.run(stdin="3 4\\n")    # stdin fed, stdout captured
        assert call.stdout == "7\\n"

    def test_program():                            # a compiled program, same separation
        done = harness.run(["./prog"], stdin="3 4 +\\n")
        assert done.stdout == "7\\n"

Run it with ``python3 -P -m grader_harness pytest .sphere-engine/tests`` (the run stage of
a project): pytest then reads only the instructor's configuration, loads no plugin but
this one, and writes its JUnit XML to ``$SE_PATH_UNIT_TESTS_REPORT``.

What crosses between the tests and the student's process is plain data, as tagged JSON
(never pickle): None, bool, int, float, complex, str, bytes, bytearray, list, tuple,
dict, set, frozenset, range, decimal.Decimal and fractions.Fraction. A subclass of these
arrives as its base type (a Counter as a dict, a namedtuple as a tuple). Anything else
the student's code returns arrives as a handle (``StudentObject``) whose methods and
attributes are called the same way; a handle is never equal to plain data. The student's
exceptions arrive as ``StudentError`` (type name, message, the student's traceback).

Each call has a time limit (``grader_call_timeout``, 5 s by default) and so does each
test (``grader_test_timeout``, 10 s; ``@pytest.mark.grader_timeout(s)`` for one test): a
hang fails that test alone ("timed out after N s") and the student's process is started
afresh for the next one. Under grader's local engine the student's process runs in a
sandbox of its own (no instructor files, no report paths, its own pid namespace and,
when the engine is root, its own uid), started by the engine through
``$GRADER_HARNESS_SOCKET``. Elsewhere (the cloud service) it is an ordinary child
process: with a uid of its own when the harness runs as root, else the same user.

This file needs only the standard library (pytest for the plugin parts) and works as a
copy: put it beside a project's tests (``.sphere-engine/grader_harness.py``) and run
``python3 -P .sphere-engine/grader_harness.py pytest .sphere-engine/tests``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

# The student's process imports this file at every start: what only the tests' side (or
# a rare value) needs is imported where it is used, and typing not at all
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, ClassVar

__all__ = [
    "Call",
    "Completed",
    "HarnessError",
    "StudentError",
    "StudentModule",
    "StudentObject",
    "StudentTimeout",
    "module",
    "raises",
    "restart",
    "run",
]

DEFAULT_CALL_TIMEOUT = 5.0
DEFAULT_TEST_TIMEOUT = 10.0
OUTPUT_CAP = 1_000_000  # bytes kept of each captured stream per call
MESSAGE_CAP = 32_000_000  # bytes of one protocol message
DEPTH_CAP = 200  # nesting of plain data
TEXT_CAP = 20_000  # characters of a student's exception message or traceback
SOCKET_ENV = "GRADER_HARNESS_SOCKET"  # set by grader's local engine in trusted stages
CONTROL_FD_ENV = "GRADER_HARNESS_FD"  # the worker's end of the control channel
WORKER_ENV = "GRADER_HARNESS_WORKER"  # the engine's copy of this file, seen by both sides
PROTOCOL = 1  # requests and the worker must agree (a project's copy may be older)
NOBODY = 65534
STARTUP = 120.0  # seconds a student process may take to start on a loaded machine
__tracebackhide__ = True  # pytest shows the test and the student's traceback, not ours


class HarnessError(Exception):
    """The harness itself could not do what a test asked (not the student's fault)."""


class StudentError(Exception):
    """The student's code raised: ``type_name``, ``message`` and its traceback as text.

    ``types`` lists the names of the exception's classes, most specific first, so
    ``raises("LookupError")`` matches a ``KeyError``.
    """

    def __init__(
        self, what: str, type_name: str, message: str, types: Sequence[str] = (), tb: str = ""
    ) -> None:
        self.what, self.type_name, self.message = what, type_name, message
        self.types, self.traceback = tuple(types) or (type_name,), tb
        self.stdout = self.stderr = ""
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{self.what} raised {self.type_name}"
        head += f": {self.message}" if self.message else ""
        return head + (f"\n{self.traceback}" if self.traceback else "")


class StudentTimeout(StudentError):  # noqa: N818 (reads as what happened, as TimeoutError)
    """A call (or the whole test) ran past its time limit; the student's process was ended."""

    def __init__(self, what: str, seconds: float, scope: str = "call") -> None:
        self.seconds = seconds
        message = f"timed out after {seconds:g} s" + (
            " (the test's limit)" if scope == "test" else ""
        )
        super().__init__(what, "Timeout", message)

    def _text(self) -> str:
        return f"{self.message}: {self.what}"


# Plain data as tagged JSON -----------------------------------------------------------------
#
# JSON arrays are lists; every JSON object is exactly one tag: {"$tuple": [...]} and so on.
# Integers beyond 2**53 travel as text so that no float rounds them.

_SAFE_INT = 2**53


class _NotPlain(Exception):  # noqa: N818 (private; the callers turn it into their own error)
    """A value that cannot cross (a cycle, too deep, or not plain data where required)."""


def encode(value: Any, handles: Callable[[Any], int] | None = None) -> Any:
    """``value`` as tagged JSON; ``handles`` (the student's side) turns other objects into
    handle numbers, else they are refused with ``_NotPlain``."""
    return _Encoder(handles).encode(value, 0)


class _Encoder:
    def __init__(self, handles: Callable[[Any], int] | None) -> None:
        self.handles = handles
        self.open: set[int] = set()  # containers being encoded (a cycle is refused)

    def encode(self, value: Any, depth: int) -> Any:
        if depth > DEPTH_CAP:
            raise _NotPlain(f"nested more than {DEPTH_CAP} levels deep")
        kind = type(value)  # never isinstance: a student's class may lie about __class__
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            return value if -_SAFE_INT < value < _SAFE_INT else {"$int": str(value)}
        if kind is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, StudentObject) and kind is StudentObject:
            return {"$handle": value._grader_id}
        plain = self._plain_base(value)
        if plain is not None:
            return self.encode(plain, depth)
        if kind in _CONTAINERS:
            return self._container(value, kind, depth)
        if kind is complex:
            return {"$complex": [self.encode(value.real, depth), self.encode(value.imag, depth)]}
        if kind is bytes:
            return {"$bytes": _base64().b64encode(value).decode("ascii")}
        if kind is bytearray:
            return {"$bytearray": _base64().b64encode(bytes(value)).decode("ascii")}
        if kind is range:
            return {"$range": [value.start, value.stop, value.step]}
        # a Decimal or a Fraction exists only once its module is imported (by whoever made it)
        if kind is _loaded("decimal", "Decimal"):
            return {"$decimal": str(value)}
        if kind is _loaded("fractions", "Fraction"):
            return {"$fraction": f"{value.numerator}/{value.denominator}"}
        if self.handles is not None:
            return {"$handle": self.handles(value), "type": _type_name(value)}
        raise _NotPlain(f"a {_type_name(value)} is not plain data")

    def _container(self, value: Any, kind: type, depth: int) -> Any:
        if id(value) in self.open:
            raise _NotPlain("it contains itself")
        self.open.add(id(value))
        try:
            if kind is list:
                return [self.encode(item, depth + 1) for item in value]
            if kind is dict:
                pairs = [
                    [self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()
                ]
                return {"$dict": pairs}
            items = [self.encode(item, depth + 1) for item in value]
            return {_CONTAINERS[kind]: items}
        finally:
            self.open.discard(id(value))

    def _plain_base(self, value: Any) -> Any:
        """A subclass of a plain type as that type, read through the base class's own
        methods (never the subclass's overrides); ``None`` for anything else. (On the
        student's side this is convenience, not a defence: the tests' side builds every
        value afresh from JSON, so a student's object never reaches an assertion.)"""
        kind = type(value)
        if kind in _EXACT:
            return None
        for base, convert in _BASES:
            if issubclass(kind, base):
                return convert(value)
        return None


_CONTAINERS: dict[type, str] = {
    list: "",
    dict: "",
    tuple: "$tuple",
    set: "$set",
    frozenset: "$frozenset",
}
_EXACT = (bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset, complex)
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (bool, lambda v: bool(int.__index__(v))),
    (int, int.__index__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes.__bytes__),
    (dict, lambda v: {k: dict.__getitem__(v, k) for k in dict.keys(v)}),
    (list, lambda v: [list.__getitem__(v, i) for i in range(list.__len__(v))]),
    (tuple, lambda v: tuple(tuple.__getitem__(v, i) for i in range(tuple.__len__(v)))),
    (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
    (set, lambda v: set(set.__iter__(v))),
)


def decode(data: Any, make_handle: Callable[[int, str], Any] | None = None) -> Any:
    """Tagged JSON back to plain values built here (only builtin types, or handles)."""
    return _decode(data, make_handle, 0)


def _decode(data: Any, make_handle: Callable[[int, str], Any] | None, depth: int) -> Any:
    if depth > DEPTH_CAP + 1:
        raise _NotPlain(f"nested more than {DEPTH_CAP} levels deep")
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return [_decode(item, make_handle, depth + 1) for item in data]
    if kind is not dict or len(data) not in (1, 2):
        raise _NotPlain(f"unexpected {kind.__name__} in the data")
    tag = next(iter(data))
    body = data[tag]

    def inner(items: Any) -> list[Any]:
        return [_decode(item, make_handle, depth + 1) for item in _list(items)]

    if tag == "$tuple":
        return tuple(inner(body))
    if tag == "$set":
        return set(inner(body))
    if tag == "$frozenset":
        return frozenset(inner(body))
    if tag == "$dict":
        return {
            _decode(k, make_handle, depth + 1): _decode(v, make_handle, depth + 1)
            for k, v in _pairs(body)
        }
    if tag == "$int":
        return int(_text(body))
    if tag == "$float":
        return float(_text(body))
    if tag == "$complex":
        real, imag = inner(body)
        return complex(real, imag)
    if tag in ("$bytes", "$bytearray"):
        raw = _base64().b64decode(_text(body), validate=True)
        return raw if tag == "$bytes" else bytearray(raw)
    if tag == "$range":
        start, stop, step = (int(n) for n in _list(body))
        return range(start, stop, step)
    if tag == "$decimal":
        import decimal

        number = decimal.Decimal(_text(body))
        if number.is_snan():  # it would raise InvalidOperation wherever it is compared
            raise _NotPlain("a signalling NaN is not plain data")
        return number
    if tag == "$fraction":
        import fractions

        return fractions.Fraction(_text(body))
    if tag == "$handle" and make_handle is not None and type(body) is int:
        return make_handle(body, _text(data.get("type", "object")))
    raise _NotPlain(f"unknown tag {tag!r}")


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _NotPlain("a tag's body is not a list")
    return value


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    pairs = _list(value)
    if any(type(pair) is not list or len(pair) != 2 for pair in pairs):
        raise _NotPlain("a dict's items are not pairs")
    return [(pair[0], pair[1]) for pair in pairs]


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _NotPlain("a tag's body is not text")
    return value


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__name__
        if kind.__module__ in ("builtins", "__main__")
        else f"{kind.__module__}.{kind.__qualname__}"
    )


# Messages: a 4-byte length, then UTF-8 JSON ------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    if len(data) > MESSAGE_CAP:
        raise _NotPlain(f"the message is {len(data)} bytes, more than {MESSAGE_CAP}")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _receive(sock: socket.socket, deadline: float | None) -> dict[str, Any] | None:
    """The next message, ``None`` when the peer closed; ``TimeoutError`` past ``deadline``."""
    head = _exactly(sock, 4, deadline)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MESSAGE_CAP:
        raise _NotPlain(f"a message of {size} bytes is more than {MESSAGE_CAP}")
    body = _exactly(sock, size, deadline)
    if body is None:
        return None
    message = json.loads(body.decode("utf-8", "surrogatepass"))
    if type(message) is not dict:
        raise _NotPlain("a message is not an object")
    return message


def _exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(size - got, 1 << 20))
        except TimeoutError as exc:
            raise TimeoutError from exc
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# The student's side: the worker loop -------------------------------------------------------


def _worker_main() -> int:
    """Serve calls on the control channel until it closes (runs the student's code)."""
    channel = socket.socket(fileno=int(os.environ[CONTROL_FD_ENV]))
    # the student's folder first, as `python3 solution.py` has it
    sys.path.insert(0, str(_workspace()))
    worker = _Worker(channel)
    _send(channel, {"ready": PROTOCOL})  # before any student code has run
    while True:
        request = _receive(channel, None)
        if request is None:
            return 0
        _send(channel, worker.answer(request))


class _Worker:
    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.objects: dict[int, Any] = {}
        self.numbers: dict[int, int] = {}  # id(object) -> handle number
        self.modules: dict[str, Any] = {}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if request.get("protocol") != PROTOCOL:
            mismatch = ValueError(
                f"the tests' grader_harness speaks protocol {request.get('protocol')}, this "
                f"worker {PROTOCOL}: copy the current grader_harness.py into the project"
            )
            return {"ok": False, "raised": _raised(mismatch, "ProtocolMismatch")}
        with _Captured(request.get("stdin")) as captured:
            try:
                if op == "import":
                    self._import(str(request["module"]))
                    value = None
                else:
                    value = self._perform(op, request)
                outcome: dict[str, Any] = {"ok": True}
            except BaseException as exc:  # noqa: BLE001 (the student's exceptions are data, SystemExit too)
                outcome = {"ok": False, "raised": _raised(exc)}
                value = None
        outcome.update(stdout=captured.stdout, stderr=captured.stderr)
        if outcome["ok"]:
            try:
                outcome["value"] = encode(value, self._handle)
                if request.get("args_after"):
                    outcome["args"] = encode(list(request["_args"]), self._handle)
            except (_NotPlain, RecursionError) as exc:
                outcome = {
                    "ok": False,
                    "raised": _raised(exc, "ValueNotPlainData"),
                    **captured.both(),
                }
        return outcome

    def _perform(self, op: Any, request: dict[str, Any]) -> Any:
        target = self._resolve(request["target"])
        args = decode(request.get("args", []), self._object)
        kwargs = decode(request.get("kwargs", {"$dict": []}), self._object)
        request["_args"] = args
        if op == "call":
            return target(*args, **kwargs)
        if op == "get":
            return target
        if op == "len":
            return len(target)
        if op == "list":
            return list(target)
        if op == "contains":
            return args[0] in target
        if op == "item":
            return target[args[0]]
        if op == "str":
            return str(target)
        raise ValueError(f"unknown operation {op!r}")

    def _import(self, name: str) -> Any:
        if name not in self.modules:
            self.modules[name] = importlib.import_module(name)
        return self.modules[name]

    def _resolve(self, target: dict[str, Any]) -> Any:
        if "handle" in target:
            found = self._object(int(target["handle"]), "")
        else:
            found = self._import(str(target["module"]))
        for name in target.get("path", []):
            found = getattr(found, str(name))
        return found

    def _object(self, number: int, _type: str) -> Any:
        if number not in self.objects:
            raise LookupError(f"handle {number} is not known to the student's process")
        return self.objects[number]

    def _handle(self, value: Any) -> int:
        number = self.numbers.get(id(value))
        if number is None:
            number = len(self.objects) + 1
            while number in self.objects:
                number += 1
            self.objects[number], self.numbers[id(value)] = value, number
        return number


def _raised(exc: BaseException, type_name: str | None = None) -> dict[str, Any]:
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 (a student's __str__ may raise anything)
        message = "(the exception's message could not be read)"
    kinds = [cls.__name__ for cls in type(exc).__mro__ if cls is not object]
    import traceback

    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    own = [line for line in lines if "grader_harness" not in line and __file__ not in line]
    return {
        "type": type_name or type(exc).__name__,
        "types": [type_name] if type_name else kinds,
        "message": message[:TEXT_CAP],
        "traceback": "".join(own)[-TEXT_CAP:],
    }


def _scratch_file() -> IO[bytes]:
    """An unnamed file in $TMPDIR, as ``tempfile.TemporaryFile`` makes on Linux (without
    importing tempfile, which every start of the student's process would pay for)."""
    folder, unnamed = os.environ.get("TMPDIR"), getattr(os, "O_TMPFILE", 0)
    if folder and unnamed:
        with contextlib.suppress(OSError):
            return os.fdopen(os.open(folder, unnamed | os.O_RDWR, 0o600), "w+b")
    import tempfile

    return tempfile.TemporaryFile()


def _loaded(module: str, name: str) -> object:
    """``module.name`` if that module is imported, else ``None`` (never imports it)."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _base64() -> Any:
    import base64

    return base64


class _Captured:
    """The call's stdin fed from ``stdin`` and its stdout/stderr caught, at the fd level
    (so that os.write, C code and child processes are caught too)."""

    files: ClassVar[list[IO[bytes]]] = []

    def __init__(self, stdin: Any) -> None:
        self.stdin = stdin
        self.stdout = self.stderr = ""

    def __enter__(self) -> _Captured:
        self.saved = [os.dup(fd) for fd in (0, 1, 2)]
        self.objects = (sys.stdin, sys.stdout, sys.stderr)
        if not _Captured.files:  # three files for the worker's life, emptied per call
            _Captured.files = [_scratch_file() for _ in range(3)]
        for file in _Captured.files:
            file.seek(0)
            file.truncate()
        feed = decode(self.stdin) if self.stdin is not None else b""
        _Captured.files[0].write(feed.encode() if isinstance(feed, str) else bytes(feed))
        _Captured.files[0].seek(0)
        for fd, file in enumerate(_Captured.files):
            os.dup2(file.fileno(), fd)
        sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(
            open(1, "wb", closefd=False), encoding="utf-8", line_buffering=True
        )
        sys.stderr = io.TextIOWrapper(
            open(2, "wb", closefd=False), encoding="utf-8", line_buffering=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdin, sys.stdout, sys.stderr = self.objects
        for fd, saved in enumerate(self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.stdout, self.stderr = (self._read(file) for file in _Captured.files[1:])

    @staticmethod
    def _read(file: IO[bytes]) -> str:
        file.seek(0)
        data = file.read(OUTPUT_CAP + 1)
        text = data[:OUTPUT_CAP].decode("utf-8", "replace")
        return text + ("\n[output truncated]" if len(data) > OUTPUT_CAP else "")

    def both(self) -> dict[str, str]:
        return {"stdout": self.stdout, "stderr": self.stderr}


# Starting the student's processes ----------------------------------------------------------


class _Process:
    """A student process: pipes or nothing for stdio, maybe a control channel; ``stop`` ends it
    and everything it started. ``wait`` returns (exit code, signal) or ``None`` on timeout."""

    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None
    control: socket.socket | None = None

    def wait(self, timeout: float) -> tuple[int | None, int | None] | None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class _Brokered(_Process):
    """Started by grader's local engine in a sandbox of its own (see the module docstring)."""

    def __init__(self, path: str, request: dict[str, Any]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(30)
            self.sock.connect(path)
            self.sock.sendall(json.dumps(request).encode() + b"\n")
            data, fds, _, _ = socket.recv_fds(self.sock, 65536, 4)
        except OSError as exc:
            self.sock.close()
            raise HarnessError(f"the engine did not start the student's process: {exc}") from exc
        answer = json.loads(data.split(b"\n", 1)[0] or b"{}")
        if not answer.get("ok"):
            for fd in fds:
                os.close(fd)
            self.sock.close()
            raise HarnessError(
                f"the engine refused to start the student's process: {answer.get('error')}"
            )
        self.rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
        names = answer.get("fds", [])
        files = dict(zip(names, fds, strict=False))
        self.stdin = os.fdopen(files["stdin"], "wb", buffering=0) if "stdin" in files else None
        self.stdout = os.fdopen(files["stdout"], "rb", buffering=0) if "stdout" in files else None
        self.stderr = os.fdopen(files["stderr"], "rb", buffering=0) if "stderr" in files else None
        self.control = socket.socket(fileno=files["control"]) if "control" in files else None
        self.ended: tuple[int | None, int | None] | None = None

    def wait(self, timeout: float) -> tuple[int | None, int | None] | None:
        if self.ended is not None:
            return self.ended
        deadline = time.monotonic() + timeout
        while b"\n" not in self.rest:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                chunk = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return None
            except OSError:
                chunk = b""
            if not chunk:  # the engine went away: the process went with it
                self.ended = (None, signal.SIGKILL)
                return self.ended
            self.rest += chunk
        ended = json.loads(self.rest.split(b"\n", 1)[0])
        self.ended = (ended.get("exit_code"), ended.get("signal"))
        return self.ended

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b'{"op": "kill"}\n')
        self.wait(10)
        _close_all(self)
        self.sock.close()


class _Child(_Process):
    """An ordinary child process (no engine to ask): its own session, limits, and a uid of
    its own when the harness is root; instructor files made unreadable to that uid."""

    lib: Path | None = None  # the worker's code where nobody can read it (root, no engine)

    def __init__(self, argv: list[str], *, control: bool, pipes: bool, env: dict[str, str]) -> None:
        import subprocess

        theirs: socket.socket | None = None
        pass_fds: tuple[int, ...] = ()
        if control:
            self.control, theirs = socket.socketpair()
            env = {**env, CONTROL_FD_ENV: str(theirs.fileno())}
            pass_fds = (theirs.fileno(),)
        stdio = subprocess.PIPE if pipes else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=stdio,
                stdout=stdio,
                stderr=stdio,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,
                preexec_fn=_drop_privileges if os.geteuid() == 0 else None,
            )
        except OSError as exc:
            raise HarnessError(f"cannot start the student's process: {exc}") from exc
        finally:
            if theirs is not None:
                theirs.close()
        self.stdin, self.stdout, self.stderr = (
            self.process.stdin,
            self.process.stdout,
            self.process.stderr,
        )

    def wait(self, timeout: float) -> tuple[int | None, int | None] | None:
        import subprocess

        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return (None, -code) if code < 0 else (code, None)

    def stop(self) -> None:
        import subprocess

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        _close_all(self)


def _drop_privileges() -> None:
    """In the child, before exec: the instructor's folders hidden (a mount namespace of its
    own with an empty folder over each, where the kernel allows it), no root, no groups."""
    import resource

    with contextlib.suppress(OSError):
        _hide(_PROTECTED)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _hide(folders: Sequence[Path]) -> None:
    """unshare(CLONE_NEWNS), then an empty read-only tmpfs over each of ``folders``."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    new_mount_namespace, recursive, private, read_only = 0x20000, 0x4000, 1 << 18, 1
    done = libc.unshare(new_mount_namespace) == 0
    done = done and libc.mount(b"none", b"/", None, recursive | private, None) == 0
    for folder in folders:
        where = str(folder).encode()
        done = done and libc.mount(b"hidden", where, b"tmpfs", read_only, b"size=4k") == 0
    if not done:
        raise OSError(ctypes.get_errno(), "cannot hide the instructor's files")


def _close_all(process: _Process) -> None:
    for stream in (process.stdin, process.stdout, process.stderr, process.control):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _start(
    argv: list[str], *, control: bool, pipes: bool, lifetime: float, cwd: str = "."
) -> _Process:
    path = os.environ.get(SOCKET_ENV)
    if path:
        request = {
            "argv": argv,
            "cwd": cwd,
            "control": control,
            "stdio": "pipes" if pipes else "null",
            "timeout": lifetime,
        }
        return _Brokered(path, request)
    _protect_instructor_files()
    env = _student_env(os.environ)
    workspace = _workspace()
    folder = Path(os.path.normpath(workspace / cwd))
    if not _inside(folder, workspace):
        raise HarnessError(f"cwd {cwd!r} is outside the workspace")
    wrapped = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(folder), *argv]
    return _Child(wrapped, control=control, pipes=pipes, env=env)


def _student_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The tests' environment less what the student's process must not learn: pytest's
    variables (``PYTEST_CURRENT_TEST`` names the running test, hidden ones too) and every
    ``SE_PATH_*`` but the workspace (the report, the result, the stages' output files)."""
    return {
        key: value
        for key, value in environ.items()
        if key == "SE_PATH_WORKSPACE" or not key.startswith(("PYTEST_", "SE_PATH_"))
    }


def _workspace() -> Path:
    return Path(os.environ.get("SE_PATH_WORKSPACE") or Path.cwd()).absolute()


_PROTECTED: list[Path] = []


def _protect_instructor_files() -> None:
    """As root without an engine to ask: the tests' top folder in the workspace and the
    report's folder are what the student's process must not see. Each is hidden in the
    child (``_hide``) and, where the file system allows, also made root's alone (0700)."""
    if os.geteuid() != 0 or _PROTECTED:
        return
    workspace = _workspace()
    folders = set()
    if _TESTS_ROOT is not None and _inside(_TESTS_ROOT, workspace) and workspace != _TESTS_ROOT:
        folders.add(workspace / _TESTS_ROOT.relative_to(workspace).parts[0])
    for name in ("SE_PATH_UNIT_TESTS_REPORT", "SE_PATH_FINAL_TESTS_REPORT"):
        if os.environ.get(name):
            folders.add(Path(os.environ[name]).absolute().parent)
    for folder in sorted(folders):
        if _inside(workspace, folder) or not folder.is_dir():
            continue  # never the workspace or a folder above it
        _PROTECTED.append(folder)
        with contextlib.suppress(OSError):  # a read-only mount keeps its modes
            os.chown(folder, 0, 0)
            folder.chmod(0o700)


def _worker_argv() -> list[str]:
    """The worker: this very file, run by this Python, readable by the student's uid (from
    the engine's lib folder as a module, so its cached bytecode is used)."""
    if os.environ.get(SOCKET_ENV) and os.environ.get(WORKER_ENV):
        return [sys.executable, "-B", "-s", "-P", "-m", "grader_harness", "worker"]
    source = Path(os.environ.get(WORKER_ENV) or __file__).absolute()
    if not os.environ.get(SOCKET_ENV) and os.geteuid() == 0:
        if _Child.lib is None:
            import shutil
            import tempfile

            _Child.lib = Path(tempfile.mkdtemp(prefix="grader-harness-"))
            _Child.lib.chmod(0o755)
            shutil.copyfile(source, _Child.lib / "grader_harness.py")
        source = _Child.lib / "grader_harness.py"
    return [sys.executable, "-B", "-s", str(source), "worker"]


# The tests' side: calls, handles and programs ----------------------------------------------

_STATE: Any = None  # a threading.local, made at the first test (the worker has none)
_TESTS_ROOT: Path | None = None  # the folder of the tests (pytest entry point)


class _Session:
    """The student's worker process, started on demand, ended after a timeout or crash."""

    def __init__(self) -> None:
        self.process: _Process | None = None
        self.generation = 0
        self.test_deadline: float | None = None  # set by the plugin while a test runs
        self.starting: tuple[float, _Process] | None = None  # started, not yet ready
        self.test_limit = self.default_test_limit = DEFAULT_TEST_TIMEOUT
        self.call_timeout = float(os.environ.get("GRADER_CALL_TIMEOUT") or DEFAULT_CALL_TIMEOUT)

    def begin_test(self, limit: float) -> None:
        self.test_limit, self.test_deadline = limit, time.monotonic() + limit

    def deadline(self, timeout: float | None) -> tuple[float, float, str]:
        """When a call must end, the limit to name if it does not, and whose limit it is."""
        limit = self.call_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        if self.test_deadline is not None and self.test_deadline < deadline:
            return self.test_deadline, self.test_limit, "test"
        return deadline, limit, "call"

    def ask(self, what: str, request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        process = self._worker()
        deadline, limit, scope = self.deadline(timeout)
        request["protocol"] = PROTOCOL
        assert process.control is not None
        try:
            _send(process.control, request)
            answer = _receive(process.control, deadline)
        except (BrokenPipeError, ConnectionResetError):
            answer = None  # it died (or never started): said below with its exit status
        except TimeoutError:
            self.end()
            self.prestart()  # the next call's process starts while this test fails
            raise StudentTimeout(what, limit, scope) from None
        except (OSError, _NotPlain, ValueError, RecursionError) as exc:
            self.end()
            raise StudentError(
                what, "ProcessBroken", f"the student's process broke the protocol: {exc}"
            ) from None
        except BaseException:
            self.end()  # the test's own limit (a signal) or anything else mid-call
            raise
        if answer is None:
            ended = process.wait(1.0)
            self.end()
            how = _ending(ended)
            raise StudentError(
                what, "ProcessExited", f"the student's process {how} during the call"
            )
        return answer

    def prestart(self) -> None:
        """Start the worker now, without waiting for it (the first call waits)."""
        if self.process is None and self.starting is None:
            with contextlib.suppress(HarnessError):
                self.starting = (time.monotonic(), self._launch())

    def _launch(self) -> _Process:
        return _start(_worker_argv(), control=True, pipes=False, lifetime=STARTUP + 86400)

    def _worker(self) -> _Process:
        """The worker, started and ready. Starting it is the machine's time, not the
        student's: neither the call nor the test is charged for it."""
        if self.process is not None:
            return self.process
        if self.starting is not None:
            (began, process), self.starting = self.starting, None
        else:
            began, process = time.monotonic(), self._launch()
        assert process.control is not None
        try:
            hello = _receive(process.control, began + STARTUP)
        except (OSError, TimeoutError, ValueError, _NotPlain):
            hello = None
        if hello is None or "ready" not in hello:
            ended = process.wait(1.0)
            process.stop()
            raise HarnessError(f"the student's process did not start: it {_ending(ended)}")
        if self.test_deadline is not None:
            self.test_deadline += time.monotonic() - began
        self.process = process
        self.generation += 1
        return process

    def end(self) -> None:
        if self.starting is not None:
            (_, starting), self.starting = self.starting, None
            starting.stop()
        if self.process is not None:
            process, self.process = self.process, None
            process.stop()


def _ending(ended: tuple[int | None, int | None] | None) -> str:
    if ended is None:
        return "stopped answering"
    code, sig = ended
    if sig is not None:
        return f"was killed by signal {sig}"
    return f"exited with status {code}"


def _session() -> _Session:
    global _STATE
    if _STATE is None:
        import threading

        _STATE = threading.local()
    session = getattr(_STATE, "session", None)
    if session is None:
        session = _STATE.session = _Session()
    return session


def restart() -> None:
    """End the student's process; the next call starts a fresh one (fresh module state)."""
    _session().end()


class Call:
    """One call's outcome: ``value``, what it printed, and its arguments after the call
    (for functions that change a list or dict in place)."""

    def __init__(self, value: Any, stdout: str, stderr: str, args: tuple[Any, ...]) -> None:
        self.value, self.stdout, self.stderr, self.args = value, stdout, stderr, args

    def __repr__(self) -> str:
        return f"Call(value={self.value!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


class _Member:
    """A name in the student's module or object: call it, ``.run`` it, or ``.get`` its value."""

    def __init__(self, owner: StudentModule | StudentObject, path: tuple[str, ...]) -> None:
        self._grader_owner, self._grader_path = owner, path

    def __getattr__(self, name: str) -> _Member:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Member(self._grader_owner, (*self._grader_path, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).value

    def run(
        self,
        *args: Any,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Call:
        """Call it with ``stdin`` fed; returns a ``Call`` with stdout, stderr and the args."""
        return self._grader_owner._grader_ask(
            "call", self._grader_path, args, kwargs, stdin, timeout
        )

    def get(self, timeout: float | None = None) -> Any:
        """The attribute's value (plain data, or a handle)."""
        return self._grader_owner._grader_ask("get", self._grader_path, (), {}, None, timeout).value

    def __repr__(self) -> str:
        return f"<student {self._grader_owner._grader_label}.{'.'.join(self._grader_path)}>"


class _Remote:
    _grader_label = "?"
    _grader_timeout: float | None = None  # each call's limit (the session's when None)

    def _grader_target(self) -> dict[str, Any]:
        raise NotImplementedError

    def _grader_ask(
        self,
        op: str,
        path: tuple[str, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stdin: str | bytes | None,
        timeout: float | None,
    ) -> Call:
        what = ".".join((self._grader_label, *path)) + ("()" if op == "call" else "")
        try:
            request = {
                "op": op,
                "target": {**self._grader_target(), "path": list(path)},
                "args": encode(list(args)),
                "kwargs": encode(dict(kwargs)),
                "stdin": None if stdin is None else encode(stdin),
                "args_after": op == "call",
            }
        except _NotPlain as exc:
            raise HarnessError(
                f"{what}: an argument cannot be sent to the student's code: {exc}"
            ) from None
        session = _session()
        self._grader_check(session)
        answer = session.ask(what, request, self._grader_timeout if timeout is None else timeout)
        return _answered(what, answer, session)

    def _grader_check(self, session: _Session) -> None:
        pass


def _answered(what: str, answer: dict[str, Any], session: _Session) -> Call:
    stdout, stderr = str(answer.get("stdout", "")), str(answer.get("stderr", ""))
    if not answer.get("ok"):
        found = answer.get("raised")
        raised: dict[str, Any] = found if type(found) is dict else {}
        listed = raised.get("types")
        types = [str(t) for t in listed][:50] if type(listed) is list else []
        error = StudentError(
            what,
            str(raised.get("type", "Exception"))[:200],
            str(raised.get("message", ""))[:TEXT_CAP],
            types,
            str(raised.get("traceback", ""))[-TEXT_CAP:],
        )
        error.stdout, error.stderr = stdout, stderr
        raise error
    make = lambda number, type_name: StudentObject(number, type_name, session.generation)  # noqa: E731
    try:
        value = decode(answer.get("value"), make)
        args = tuple(decode(answer.get("args", []), make))
    except (_NotPlain, ValueError, TypeError, ArithmeticError) as exc:
        # never an exception of the student's choosing raised in the tests' process (a
        # forged Fraction 1/0 would satisfy a test's pytest.raises(ZeroDivisionError))
        session.end()
        raise StudentError(
            what, "ProcessBroken", f"the student's process sent unreadable data: {exc}"
        ) from None
    return Call(value, stdout, stderr, args)


class StudentModule(_Remote):
    """The student's module, imported in the student's process on first use."""

    def __init__(self, name: str, timeout: float | None = None) -> None:
        self._grader_name, self._grader_label, self._grader_timeout = name, name, timeout
        self._grader_imported = -1  # the worker generation that imported it
        _session().prestart()  # while pytest collects, the student's process starts

    def __getattr__(self, name: str) -> _Member:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Member(self, (name,))

    def _grader_target(self) -> dict[str, Any]:
        return {"module": self._grader_name}

    def _grader_check(self, session: _Session) -> None:
        """Import it first, on its own time limit, so import output and errors are its own."""
        if self._grader_imported == session.generation and session.process is not None:
            return
        request = {"op": "import", "module": self._grader_name}
        answer = session.ask(f"import {self._grader_name}", request, self._grader_timeout)
        _answered(f"import {self._grader_name}", answer, session)
        self._grader_imported = session.generation

    def __repr__(self) -> str:
        return f"<student module {self._grader_name}>"


class StudentObject(_Remote):
    """A handle on an object that lives in the student's process (never plain data)."""

    def __init__(self, number: int, type_name: str, generation: int) -> None:
        self._grader_id, self._grader_type, self._grader_generation = number, type_name, generation
        self._grader_label = f"<{type_name} #{number}>"

    def __getattr__(self, name: str) -> _Member:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Member(self, (name,))

    def _grader_target(self) -> dict[str, Any]:
        return {"handle": self._grader_id}

    def _grader_check(self, session: _Session) -> None:
        if session.generation != self._grader_generation or session.process is None:
            raise HarnessError(f"{self._grader_label} is gone: the student's process was restarted")

    def _grader_op(self, op: str, *args: Any) -> Any:
        return self._grader_ask(op, (), args, {}, None, None).value

    def __len__(self) -> int:
        value = self._grader_op("len")
        if type(value) is not int:
            raise HarnessError(f"len({self._grader_label}) is not an int")
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._grader_op("list"))

    def __contains__(self, item: Any) -> bool:
        return bool(self._grader_op("contains", item) is True)

    def __getitem__(self, key: Any) -> Any:
        return self._grader_op("item", key)

    def __str__(self) -> str:
        return str(self._grader_op("str"))

    def __repr__(self) -> str:
        return f"<student object {self._grader_type} #{self._grader_id}>"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is StudentObject
            and other._grader_id == self._grader_id
            and other._grader_generation == self._grader_generation
        )

    def __hash__(self) -> int:
        return hash((self._grader_generation, self._grader_id))


def module(name: str = "solution", *, timeout: float | None = None) -> StudentModule:
    """The student's module ``name`` (``solution.py`` in the workspace by default).

    ``timeout`` is the limit of each call (``grader_call_timeout`` when not given).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise HarnessError(f"{name!r} is not a module name")
    return StudentModule(name, timeout)


@contextlib.contextmanager
def raises(type_name: str, match: str | None = None) -> Iterator[dict[str, StudentError]]:
    """Expect the student's code to raise ``type_name`` (or a subclass of it) in the block;
    ``match`` is a regular expression searched in the message. The error is in ``["error"]``."""
    caught: dict[str, StudentError] = {}
    try:
        yield caught
    except StudentTimeout:
        raise
    except StudentError as exc:
        if type_name not in exc.types:
            raise AssertionError(f"expected {type_name}, but {exc}") from None
        if match is not None and not re.search(match, exc.message):
            raise AssertionError(
                f"{exc.type_name} message {exc.message!r} does not match {match!r}"
            ) from None
        caught["error"] = exc
        return
    raise AssertionError(f"expected the student's code to raise {type_name}; it did not")


class Completed:
    """A program's run: exit code (``None`` if killed), signal, stdout and stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        signal_number: int | None,
        stdout: str | bytes,
        stderr: str | bytes,
    ) -> None:
        self.args, self.returncode, self.signal = list(argv), returncode, signal_number
        self.stdout, self.stderr = stdout, stderr

    def __repr__(self) -> str:
        fields = f"returncode={self.returncode!r}, signal={self.signal!r}"
        return f"Completed({fields}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run(
    argv: Sequence[str],
    *,
    stdin: str | bytes = "",
    timeout: float | None = None,
    cwd: str = ".",
    text: bool = True,
) -> Completed:
    """Run a student's program (``./prog``) apart from the tests, with ``stdin`` fed.

    Whatever it starts ends with it. Past ``timeout`` (the call limit by default, never
    beyond the test's) it is killed and ``StudentTimeout`` fails the test.
    """
    what = " ".join(argv)
    feed = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    _, limit, _ = _session().deadline(timeout)
    process = _start(list(argv), control=False, pipes=True, lifetime=limit + STARTUP, cwd=cwd)
    deadline, limit, scope = _session().deadline(timeout)  # from when it was started
    try:
        streams = _communicate(process, feed, deadline)
        if streams is None:
            raise StudentTimeout(what, limit, scope)
        ended = process.wait(max(deadline - time.monotonic(), 0.01))
        if ended is None:
            raise StudentTimeout(what, limit, scope)
    finally:
        process.stop()
    (out, err), (code, sig) = streams, ended
    if text:
        return Completed(
            argv, code, sig, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
    return Completed(argv, code, sig, out, err)


def _communicate(process: _Process, data: bytes, deadline: float) -> tuple[bytes, bytes] | None:
    """Feed stdin and read stdout and stderr (each capped) until the program has ended and
    its pipes are drained; ``None`` past ``deadline``."""
    import selectors

    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    reads = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    feed, written = memoryview(data), 0
    drain_until: float | None = None  # once it has ended: what it left, briefly
    with selectors.DefaultSelector() as selector:
        for fd in reads:
            selector.register(fd, selectors.EVENT_READ)
        if data:
            os.set_blocking(process.stdin.fileno(), False)
            selector.register(process.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        open_reads = len(reads)
        while open_reads:
            now = time.monotonic()
            if drain_until is None and process.wait(0) is not None:
                drain_until = now + 0.5  # a daemon it left may hold the pipes: not for long
            if now >= (drain_until or deadline):
                return (
                    None
                    if drain_until is None
                    else (
                        bytes(reads[process.stdout.fileno()]),
                        bytes(reads[process.stderr.fileno()]),
                    )
                )
            for key, _ in selector.select(min(0.05, (drain_until or deadline) - now)):
                if key.fd in reads:
                    piece = os.read(key.fd, 65536)
                    if not piece:
                        selector.unregister(key.fd)
                        open_reads -= 1
                    elif len(reads[key.fd]) < OUTPUT_CAP:
                        reads[key.fd] += piece[: OUTPUT_CAP - len(reads[key.fd])]
                    continue
                try:
                    written += os.write(key.fd, feed[written : written + 65536])
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    written = len(data)  # it stopped reading: the rest is not wanted
                if written >= len(data):
                    selector.unregister(key.fd)
                    process.stdin.close()
    return bytes(reads[process.stdout.fileno()]), bytes(reads[process.stderr.fileno()])


# The pytest plugin: per-test limits ---------------------------------------------------------


class _TestTimeout(BaseException):
    """Raised in the test by the per-test alarm (a BaseException, so that `except Exception`
    in code under test does not swallow it); becomes a failure "timed out after N s"."""


def pytest_addoption(parser: Any) -> None:
    parser.addini(
        "grader_test_timeout", "seconds each test may take", default=str(DEFAULT_TEST_TIMEOUT)
    )
    parser.addini(
        "grader_call_timeout",
        "seconds each call of student code may take",
        default=str(DEFAULT_CALL_TIMEOUT),
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "grader_timeout(seconds): this test's time limit (grader_harness)"
    )
    session = _session()
    session.default_test_limit = float(
        os.environ.get("GRADER_TEST_TIMEOUT") or config.getini("grader_test_timeout")
    )
    session.call_timeout = float(
        os.environ.get("GRADER_CALL_TIMEOUT") or config.getini("grader_call_timeout")
    )


def pytest_unconfigure(config: Any) -> None:
    _session().end()


def _alarm(signum: int, frame: Any) -> None:
    deadline = _session().test_deadline
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left > 0:  # the deadline moved (a student process took the machine's time to start)
        signal.setitimer(signal.ITIMER_REAL, left)
        return
    raise _TestTimeout


def _limited(item: Any, *, starts: bool) -> Iterator[None]:
    """Run one phase (setup or call) of a test inside the test's time budget."""
    import pytest

    session = _session()
    if starts:
        marker = item.get_closest_marker("grader_timeout")
        limit = (
            float(marker.args[0])
            if marker is not None and marker.args
            else session.default_test_limit
        )
        session.begin_test(limit)
    left = (session.test_deadline or time.monotonic()) - time.monotonic()
    import threading

    armed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    previous: Any = None
    if armed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
    try:
        try:
            yield
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    except _TestTimeout:
        session.end()  # a call may have been cut off mid-way: its process is in no known state
        pytest.fail(f"timed out after {session.test_limit:g} s (the test's limit)", pytrace=False)


def pytest_runtest_setup(item: Any) -> Iterator[None]:
    return (yield from _limited(item, starts=True))


def pytest_runtest_call(item: Any) -> Iterator[None]:
    return (yield from _limited(item, starts=False))


def pytest_runtest_teardown(item: Any, nextitem: Any) -> Iterator[None]:
    _session().test_deadline = None  # teardown calls get the call limit, not what is left
    return (yield)


def _mark_hooks() -> None:
    """Make the three phase hooks pytest wrappers (once pytest is imported, never before:
    the student's process imports this file too and has no use for pytest)."""
    pytest = sys.modules.get("pytest")
    if pytest is None:
        return
    module = sys.modules[__name__]
    for name in ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown"):
        hook = getattr(module, name, None)
        if hook is None or hasattr(hook, "pytest_impl"):
            continue
        try:
            setattr(module, name, pytest.hookimpl(wrapper=True)(hook))
        except TypeError:  # pytest before 7.4: no per-test limits rather than a broken run
            delattr(module, name)


_mark_hooks()


# Command line: `pytest` (the safe run stage) and `worker` (the student's side) -------------


def _pytest_main(args: list[str]) -> int:
    """pytest on the instructor's tests, reading no configuration or plugin from the
    workspace, with this module as a plugin and the report at $SE_PATH_UNIT_TESTS_REPORT."""
    global _TESTS_ROOT
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("PYTEST_PLUGINS", "PYTEST_ADDOPTS"):
        os.environ.pop(name, None)
    sys.dont_write_bytecode = True
    workspace = _workspace()
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and not _inside(Path(p), workspace)]
    here = sys.modules[__name__]
    sys.modules["grader_harness"] = here  # one module, whether run as a file, -m or imported
    paths = [arg for arg in args if not arg.startswith("-") and Path(arg).exists()]
    if not paths:
        print("grader_harness: name the folder of the tests", file=sys.stderr)
        return 4
    roots = [Path(p).absolute() for p in paths]
    tests = Path(os.path.commonpath([r if r.is_dir() else r.parent for r in roots]))
    if not _inside(tests, workspace) or tests == workspace:
        print(
            f"grader_harness: the tests must be in a folder inside the workspace, not {tests}",
            file=sys.stderr,
        )
        return 4
    _TESTS_ROOT = tests
    ini = _find_ini(tests, workspace)
    root = ini.parent if ini else tests
    options = [
        "-p",
        "no:cacheprovider",
        f"--rootdir={root}",
        f"--confcutdir={root}",
    ]
    options += ["-c", str(ini or os.devnull)]
    report = os.environ.get("SE_PATH_UNIT_TESTS_REPORT")
    if report and not any(arg.startswith(("--junitxml", "--junit-xml")) for arg in args):
        options.append(f"--junitxml={report}")
    import pytest

    _mark_hooks()
    return int(pytest.main([*options, *args], plugins=[here]))


def _find_ini(tests: Path, workspace: Path) -> Path | None:
    """pytest.ini in the tests' folder or a folder above it, but never the workspace root
    or above: those are the student's."""
    for folder in (tests, *tests.parents):
        if folder == workspace or not _inside(folder, workspace):
            return None
        for name in ("pytest.ini", ".pytest.ini"):
            if (folder / name).is_file():
                return folder / name
    return None


def _inside(path: Path | str, folder: Path) -> bool:
    path = Path(os.path.normpath(Path(path).absolute()))
    return path == folder or folder in path.parents


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["worker"]:
        return _worker_main()
    if args[:1] == ["pytest"]:
        return _pytest_main(args[1:])
    print("usage: python3 -P -m grader_harness pytest [pytest options] TESTS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
