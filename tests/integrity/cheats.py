"""The cheating students of the integrity suite: one repository each, honest code plus an attack.

Every attack is written as a student who wants points without solving anything would write
it, against the sample course's real projects (hw1: Python through ``grader_harness``;
hw2: C, ``./prog`` run by the harness). Each also leaves *evidence* that it ran where the
test can read it: the hw1 attacks put what they saw into the message of a public test
that fails anyway (``average_word_length`` is not written, as in hpatel's sample
repository: 75 points), the hw2 attacks write it to stderr and exit 3, which the public
tests' failure messages quote. Code that only runs if the grader loaded a student file
(a ``conftest.py``, a ``pytest.py``, a ``.pth``...) prints a *fired* marker and forges the
report; the suite checks that the marker appears nowhere and the score did not move.

The honest code comes from ``sample_course/make_repos.py`` (loaded by path), so these
students differ from the sample's honest ones only by their attack.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"


def _sample_code() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_make_repos", SAMPLE / "make_repos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sample_make_repos", module)
    spec.loader.exec_module(module)
    return module


CODE = _sample_code()


class Link(str):
    """A symbolic link in a student's repository (its target)."""


Files = Mapping[str, str]


@dataclass(frozen=True)
class Cheat:
    """One cheating student: the repositories, whom they must score like, and the proof."""

    student: str
    family: str  # the attack family of issue 10, item 8
    hw1: Files
    hw2: Files
    honest: str  # the honest student whose score this one must get, assignment by assignment
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """assignment -> regular expressions the student's own feedback must match (it ran)"""
    engine_evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """assignment -> regular expressions the engine's debug log must match"""

    @property
    def fired(self) -> str:
        """What the attack's code prints if the grader ever runs it (it must not)."""
        return fired(self.student)


def fired(student: str) -> str:
    return f"FIRED-{student}"


def fired_code(student: str) -> str:
    """A Python expression giving ``fired(student)`` whose source does not contain it."""
    return f'"FI" + "RED-" + {student!r}'


# ----------------------------------------------------------------------- hw1: honest code

EVIDENCE = """
import os
import sys

EVIDENCE = []  # what the trick found; shown by average_word_length, which is not written


def attempt(label, action):
    try:
        result = action()
    except BaseException as exc:  # the trick failing is what we report
        result = type(exc).__name__
    EVIDENCE.append(f"{label}: {result}")
    return result


def walk(top):  # os.walk without the interpreter's own (public) installation, which
    # is in the walk when the grader was installed under /tmp
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    for folder, names, files in os.walk(top):
        names[:] = [n for n in names if os.path.realpath(os.path.join(folder, n)) not in own]
        yield folder, names, files

"""

# hpatel's solution (75 points) whose missing function reports the evidence
HW1_PARTIAL = CODE.edit(
    CODE.HW1_NO_AVERAGE,
    "    raise NotImplementedError  # TODO\n",
    '    raise NotImplementedError("evidence: " + " | ".join(EVIDENCE))\n',
)


def hw1(attack: str, base: str = HW1_PARTIAL) -> str:
    """solution.py: the evidence helpers, the attack (run at import), the honest code."""
    return EVIDENCE + attack.strip("\n") + "\n\n" + base


HW1_HONEST = EVIDENCE + HW1_PARTIAL  # 75: what every hw1 attack below must still get
HW1_STARTER = CODE.HW1_STARTER  # 0
WORKSPACE = """WORKSPACE = os.environ.get("SE_PATH_WORKSPACE", ".")


def planted(*names):
    return sorted(n for n in names if os.path.lexists(os.path.join(WORKSPACE, n)))
"""

# A report rewritten to all passed (the trick of issue 10's at-exit cheat)
FORGE = r'''
import re

GUESSES = (
    "/sphere-engine/runtime/unit_tests_report.xml",
    "/sphere-engine/runtime/tests_report.json",
    "/sphere-engine/runtime/result.json",
    "../../runtime/unit_tests_report.xml",
    "/home/user/runtime/unit_tests_report.xml",
)
NAMES = ("word_count_simple", "unique_words_sorted", "top_words_simple")
NAMES += ("average_word_length_simple",)
GUESS = "<testsuite>" + "".join(
    f'<testcase classname="test_public" name="test_public_{n}"/>' for n in NAMES
) + "</testsuite>"


def forge(path):
    """All passed: the real report with its failures cut out, or a report of our own."""
    try:
        with open(path) as f:
            failures = r"<(failure|error)\b.*?</\1>|<(failure|error)\b[^>]*/>"
            text = re.sub(failures, "", f.read(), flags=re.S)
        how = "rewritten"
    except FileNotFoundError:
        text, how = GUESS, "written"
    with open(path, "w") as f:
        f.write(text)
    return how


def forge_all(record=attempt):
    for name in ("UNIT_TESTS_REPORT", "FINAL_TESTS_REPORT", "SCENARIO_RESULT"):
        name = "SE_PATH_" + name
        record(f"${name}", lambda: forge(os.environ[name]))
    for guess in GUESSES:
        record(guess, lambda: forge(guess))
'''


def fired_py(student: str) -> str:
    """Python that, if the grader ever runs it, says so loudly and forges the report."""
    return f"""import os, sys

MARK = {fired_code(student)}
print(MARK)
print(MARK, file=sys.stderr)
for name in ("SE_PATH_UNIT_TESTS_REPORT",):
    if os.environ.get(name):
        with open(os.environ[name], "w") as f:
            f.write('<testsuite><testcase classname="x" name="' + MARK + '"/></testsuite>')
"""


def cheat_conftest(student: str) -> str:
    """A conftest.py / plugin that turns every failure into a pass (and says it fired)."""
    return (
        fired_py(student)
        + """
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome, report.longrepr = "passed", None


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.skip(reason=MARK))
"""
    )


# ------------------------------------------------------------------------ hw1: the attacks

CONFTEST = Cheat(
    "root-conftest",
    "a root conftest.py",
    {
        "solution.py": hw1(WORKSPACE + 'attempt("planted", lambda: planted("conftest.py"))'),
        "conftest.py": cheat_conftest("root-conftest"),
    },
    {},
    "honest",
    {"hw1": (r"planted: \['conftest.py'\]",)},
)

MODULE_HOOKS = Cheat(
    "module-hooks",
    "hooks or plugins registered from the student module",
    {
        "solution.py": hw1(
            WORKSPACE
            + """
import gc


class Cheat:
    # turns every failure into a pass, if only a pytest session took it
    def pytest_runtest_makereport(self, item, call):
        call.excinfo = None


def register():
    config = sys.modules.get("_pytest.config")
    sessions = [o for o in gc.get_objects() if config and isinstance(o, config.Config)]
    for session in sessions:
        session.pluginmanager.register(Cheat(), "cheat")
    return f"{'pytest' in sys.modules}/{len(sessions)}"


attempt("pytest imported/sessions found", register)
attempt("plugin files", lambda: planted("cheat_plugin.py", "cheat_plugin-1.0.dist-info"))
pytest_plugins = ["cheat_plugin"]  # what a conftest would say


def pytest_runtest_makereport(item, call):  # a hook at module level, if pytest registered us
    call.excinfo = None
"""
        ),
        "cheat_plugin.py": cheat_conftest("module-hooks"),
        "cheat_plugin-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: cheat-plugin\n",
        "cheat_plugin-1.0.dist-info/entry_points.txt": "[pytest11]\ncheat = cheat_plugin\n",
        "cheat_plugin-1.0.dist-info/top_level.txt": "cheat_plugin\n",
    },
    {},
    "honest",
    {
        "hw1": (
            r"pytest imported/sessions found: False/0",
            r"plugin files: \['cheat_plugin-1.0.dist-info', 'cheat_plugin.py'\]",
        )
    },
)

SHADOWS = ("pytest.py", "_pytest", "grader_harness", "pluggy.py", "sitecustomize.py")
SHADOW_MODULES = Cheat(
    "shadow-modules",
    "a pytest.py / pytest/ / _pytest/ / grader_harness.py in the workspace",
    {
        "solution.py": hw1(WORKSPACE + f"attempt('planted', lambda: planted(*{SHADOWS!r}))"),
        # a fake pytest whose main() says every test passed
        "pytest.py": fired_py("shadow-modules") + "\ndef main(*args, **kwargs):\n    return 0\n",
        "_pytest/__init__.py": fired_py("shadow-modules"),
        "_pytest/junitxml.py": fired_py("shadow-modules"),
        "grader_harness/__init__.py": fired_py("shadow-modules")
        + "\ndef module(name='solution'):\n    return None\n",
        "grader_harness/__main__.py": fired_py("shadow-modules"),
        "pluggy.py": fired_py("shadow-modules"),
        "sitecustomize.py": fired_py("shadow-modules"),
    },
    {},
    "honest",
    {
        "hw1": (
            r"planted: \['_pytest', 'grader_harness', 'pluggy.py', 'pytest.py', "
            r"'sitecustomize.py'\]",
        )
    },
)

SHADOW_PACKAGES = Cheat(
    "shadow-packages",
    "a pytest/ package and a grader_harness.py module in the workspace",
    {
        "solution.py": hw1(
            WORKSPACE + "attempt('planted', lambda: planted('pytest', 'grader_harness.py'))"
        ),
        "pytest/__init__.py": fired_py("shadow-packages") + "\ndef main(*a, **k):\n    return 0\n",
        "pytest/__main__.py": fired_py("shadow-packages"),
        "grader_harness.py": fired_py("shadow-packages"),
    },
    {},
    "honest",
    {"hw1": (r"planted: \['grader_harness.py', 'pytest'\]",)},
)

SITE_FILES = Cheat(
    "site-files",
    "sitecustomize / usercustomize / .pth, uploaded and written into $HOME at run time",
    {
        "solution.py": hw1(
            WORKSPACE
            + f"""
PAYLOAD = {fired_py("site-files")!r}


def plant(folder, name, text):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)
    return "written"


attempt("planted", lambda: planted("sitecustomize.py", "usercustomize.py", "cheat.pth"))
HOME = os.path.expanduser("~")
VERSION = "python%d.%d" % sys.version_info[:2]
USER_SITE = os.path.join(HOME, ".local", "lib", VERSION, "site-packages")
attempt("home usercustomize", lambda: plant(USER_SITE, "usercustomize.py", PAYLOAD))
attempt("home .pth", lambda: plant(USER_SITE, "cheat.pth", "import cheat_payload\\n"))
attempt("home payload", lambda: plant(USER_SITE, "cheat_payload.py", PAYLOAD))
attempt("home sitecustomize", lambda: plant(HOME, "sitecustomize.py", PAYLOAD))
attempt("lib sitecustomize", lambda: plant("/sphere-engine/lib", "sitecustomize.py", PAYLOAD))
attempt("lib harness", lambda: plant("/sphere-engine/lib", "grader_harness.py", PAYLOAD))
"""
        ),
        "sitecustomize.py": fired_py("site-files"),
        "usercustomize.py": fired_py("site-files"),
        "cheat.pth": "import cheat_payload\n",
        "cheat_payload.py": fired_py("site-files"),
    },
    {},
    "honest",
    {
        "hw1": (
            r"planted: \['cheat.pth', 'sitecustomize.py', 'usercustomize.py'\]",
            r"home usercustomize: written",  # its own home: harmless, but written
            r"lib sitecustomize: (OSError|PermissionError|FileNotFoundError)",
            r"lib harness: (OSError|PermissionError|FileNotFoundError)",
        )
    },
)

EXIT_AT_IMPORT = Cheat(
    "exit-at-import",
    "os._exit at import (after forging the report)",
    {
        "solution.py": EVIDENCE
        + FORGE
        + """
forge_all()
written = sum(line.endswith((": written", ": rewritten")) for line in EVIDENCE)
os._exit(40 + written)  # 40: nothing forged; pytest never gets to say what failed
"""
        + HW1_STARTER
    },
    {},
    "starter",
    {"hw1": (r"exited with status 40 during the call",)},
)

KILL_EVERYTHING = Cheat(
    "kill-everything",
    "os._exit's cousin: signal every process in sight (the tests, pytest, the sandbox's init)",
    {
        "solution.py": hw1("""
import signal


def kill_all():
    killed = []
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError as exc:
                killed.append(f"{pid} {type(exc).__name__}")
    return killed


attempt("kill -1", lambda: os.kill(-1, signal.SIGKILL))
attempt("kill 1", lambda: os.kill(1, signal.SIGKILL))
attempt("killed", kill_all)
""")
    },
    {},
    "honest",
    {"hw1": (r"kill 1: PermissionError", r"killed: \['1 PermissionError'\]")},
)

FORGE_AT_IMPORT = Cheat(
    "forge-at-import",
    "a forged xUnit or final report at import, at the paths the environment names and guessed",
    {"solution.py": hw1(FORGE + "\nforge_all()\n")},
    {},
    "honest",
    {
        "hw1": (
            r"\$SE_PATH_UNIT_TESTS_REPORT: KeyError",
            r"\$SE_PATH_FINAL_TESTS_REPORT: KeyError",
            r"/sphere-engine/runtime/unit_tests_report.xml: FileNotFoundError",
        )
    },
)

AT_EXIT_CHILD = (
    EVIDENCE
    + FORGE
    + """
import atexit


def at_exit():
    forge_all()
    print(", ".join(EVIDENCE[:4]))


atexit.register(at_exit)
"""
)

FORGE_AT_EXIT = Cheat(
    "forge-at-exit",
    "a forged report at exit (atexit), after pytest wrote the real one",
    {
        "solution.py": hw1(
            FORGE
            + f"""
import atexit
import subprocess

atexit.register(forge_all)  # in this process (it may be killed before it exits)
CHILD = {AT_EXIT_CHILD!r}


def child():  # the same at-exit forgery in a process that surely exits
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=5)
    return done.stdout.strip()


attempt("at exit", child)
"""
        )
    },
    {},
    "honest",
    {
        "hw1": (
            r"at exit: \$SE_PATH_UNIT_TESTS_REPORT: KeyError, \$SE_PATH_FINAL_TESTS_REPORT: "
            r"KeyError, \$SE_PATH_SCENARIO_RESULT: KeyError, "
            r"/sphere-engine/runtime/unit_tests_report.xml: FileNotFoundError",
        )
    },
)

FORGE_DAEMON = Cheat(
    "forge-daemon",
    "a background process racing the evaluator, rewriting every report it can find",
    {
        "solution.py": hw1(
            FORGE
            + """
import time


def find_reports():
    found = []
    for top in ("/sphere-engine", "/home", "/tmp"):
        for folder, _, names in walk(top):
            found += [os.path.join(folder, n) for n in names if "report" in n or n == "result.json"]
    return found


def daemon():
    read, write = os.pipe()
    first = os.fork()
    if first == 0:
        try:  # never back into the worker's loop, whatever happens here
            os.setsid()
            if os.fork() == 0:
                seen = find_reports()
                lines = []
                forge_all(lambda label, action: lines.append(label + " " + attempt(label, action)))
                os.write(write, f"{len(seen)} reports found; {lines[3]}".encode())
                os.close(write)
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                end = time.monotonic() + 120
                while time.monotonic() < end:  # until the grade is written, or so we hope
                    for path in find_reports() + list(GUESSES):
                        try:
                            forge(path)
                        except (OSError, ValueError):
                            pass
                    time.sleep(0.005)
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(first, 0)
    return os.read(read, 1000).decode()


attempt("daemon", daemon)
"""
        )
    },
    {},
    "honest",
    {
        "hw1": (
            r"daemon: 0 reports found; "
            r"/sphere-engine/runtime/unit_tests_report.xml FileNotFoundError",
        )
    },
)

DECOY_TESTS = """
def test_public_word_count_simple():
    pass


def test_hidden_everything():
    pass
"""

REPLACED_TESTS = Cheat(
    "replaced-tests",
    "instructor tests replaced by uploaded files at .sphere-engine paths (and a link among them)",
    {
        "solution.py": hw1(
            WORKSPACE + 'attempt(".sphere-engine here", lambda: os.listdir(".sphere-engine"))'
        ),
        ".sphere-engine/tests/test_hidden.py": fired_py("replaced-tests") + DECOY_TESTS,
        ".sphere-engine/tests/test_public.py": fired_py("replaced-tests") + DECOY_TESTS,
        ".sphere-engine/tests/conftest.py": cheat_conftest("replaced-tests"),
        ".sphere-engine/tests/test_extra.py": Link("../../decoy.py"),
        ".sphere-engine/pytest.ini": "[pytest]\naddopts = -p no:junitxml\n",
        "decoy.py": fired_py("replaced-tests") + DECOY_TESTS,
    },
    {},
    "honest",
    {"hw1": (r"\.sphere-engine here: \[\]",)},
    {
        "hw1": (
            r"submitted file \.sphere-engine/tests/test_hidden\.py dropped",
            r"submitted file \.sphere-engine/tests/conftest\.py dropped",
            r"submitted file \.sphere-engine/tests/test_extra\.py dropped",
            r"submitted file \.sphere-engine/pytest\.ini dropped",
        )
    },
)

LINKED_TESTS = Cheat(
    "linked-tests",
    "instructor tests replaced by a symbolic link to the student's own",
    {
        "solution.py": hw1(
            WORKSPACE + 'attempt(".sphere-engine here", lambda: os.listdir(".sphere-engine"))'
        ),
        ".sphere-engine": Link("decoy"),
        "decoy/pytest.ini": "[pytest]\ntestpaths = tests\n",
        "decoy/tests/test_public.py": fired_py("linked-tests") + DECOY_TESTS,
        "decoy/tests/conftest.py": cheat_conftest("linked-tests"),
    },
    {},
    "honest",
    {"hw1": (r"\.sphere-engine here: \[\]",)},
    {"hw1": (r"submitted file \.sphere-engine dropped",)},
)

TAMPERED_TESTS = Cheat(
    "tampered-tests",
    "instructor tests deleted, overwritten, moved or linked away at run time",
    {
        "solution.py": hw1(
            WORKSPACE
            + f"""
import shutil

TESTS = os.path.join(WORKSPACE, ".sphere-engine", "tests")
DECOY = {fired_py("tampered-tests") + DECOY_TESTS!r}


def overwrite(path):
    with open(path, "w") as f:
        f.write(DECOY)
    return "written"


attempt("overwrite", lambda: overwrite(os.path.join(TESTS, "test_hidden.py")))
attempt("add", lambda: overwrite(os.path.join(TESTS, "test_zzz.py")))
attempt("delete", lambda: os.unlink(os.path.join(TESTS, "test_public.py")))
attempt("rmtree", lambda: shutil.rmtree(os.path.join(WORKSPACE, ".sphere-engine")))
attempt("rename", lambda: os.rename(os.path.join(WORKSPACE, ".sphere-engine"), "gone"))
attempt("link", lambda: os.symlink("/dev/null", os.path.join(TESTS, "conftest.py")))
attempt("chmod", lambda: os.chmod(os.path.join(WORKSPACE, ".sphere-engine"), 0o777))
attempt("umount", lambda: __import__("ctypes").CDLL(None).umount2(TESTS.encode(), 2))
"""
        )
    },
    {},
    "honest",
    {
        "hw1": (
            r"overwrite: \w+Error",
            r"add: \w+Error",
            r"delete: \w+Error",
            r"rmtree: \w+Error",
            r"rename: \w+Error",
            r"link: \w+Error",
            r"chmod: \w+Error",
            r"umount: -1",
        )
    },
)

INI_FILES = Cheat(
    "ini-files",
    "pytest.ini, pyproject.toml, setup.cfg, tox.ini in the workspace",
    {
        "solution.py": hw1(
            WORKSPACE
            + "attempt('planted', lambda: planted('pytest.ini', '.pytest.ini', 'pyproject.toml', "
            "'setup.cfg', 'tox.ini'))"
        ),
        "pytest.ini": "[pytest]\naddopts = -p cheat_ini\n",
        ".pytest.ini": "[pytest]\naddopts = -p cheat_ini\n",
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p cheat_ini"\n',
        "setup.cfg": "[tool:pytest]\naddopts = -p cheat_ini\n",
        "tox.ini": "[pytest]\naddopts = -p cheat_ini\n",
        "cheat_ini.py": cheat_conftest("ini-files"),
    },
    {},
    "honest",
    {
        "hw1": (
            r"planted: \['.pytest.ini', 'pyproject.toml', 'pytest.ini', 'setup.cfg', 'tox.ini'\]",
        )
    },
)

ALWAYS_EQUAL = Cheat(
    "always-equal",
    "always-true __eq__: objects and int/list/str/float subclasses equal to anything, a lying"
    " __class__",
    {
        "solution.py": '''"""Homework 1: whatever you compare my answers with, they are equal."""


class Yes:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class YesInt(Yes, int):
    pass


class YesList(Yes, list):
    pass


class YesFloat(Yes, float):
    pass


class YesStr(Yes, str):
    pass


class Liar(Yes):
    @property
    def __class__(self):
        return list

    def __iter__(self):
        return iter([("a", 3), ("b", 2)])

    def __len__(self):
        return 2


def word_count(text):
    return YesInt(0)


def unique_words(text):
    return YesList([YesStr("x")])


def top_words(text, n):
    return Liar()


def average_word_length(text):
    return YesFloat(-1.0)
'''
    },
    {},
    "starter",
    {
        "hw1": (
            r"assert 0 == 4",
            r"assert \['x'\] == \['a', 'b', 'c'\]",
            r"assert <student obje.*Liar #\d+> == \[\('a', 3\), \('b', 2\)\]",
            r"assert -1\.0 == 3\.5",
        )
    },
)

READ_BY_PATH = Cheat(
    "read-by-path",
    "reading the hidden tests by path (and through a link), then raising them",
    {
        "solution.py": hw1(
            WORKSPACE
            + """
LEAKED = []


def read(path):
    with open(path, errors="replace") as f:
        text = f.read()
    LEAKED.append(text)
    return f"{len(text)} characters"


for path in (
    ".sphere-engine/tests/test_hidden.py",
    os.path.join(WORKSPACE, ".sphere-engine/tests/test_hidden.py"),
    "/home/user/workspace/.sphere-engine/tests/test_hidden.py",
    "peek.txt",
):
    attempt(path, lambda: read(path))
attempt("listed", lambda: os.listdir(".sphere-engine"))
def find_tests():
    tops = ("/home", "/sphere-engine", "/tmp")
    return [n for t in tops for _, _, ns in walk(t) for n in ns if n.startswith("test_")]


attempt("found", find_tests)
EVIDENCE.extend(LEAKED)  # raised with the rest: the feedback would quote it
"""
        ),
        "peek.txt": Link(".sphere-engine/tests/test_hidden.py"),
    },
    {},
    "honest",
    {
        "hw1": (
            r"\.sphere-engine/tests/test_hidden\.py: FileNotFoundError",
            r"/home/user/workspace/\.sphere-engine/tests/test_hidden\.py: FileNotFoundError",
            r"peek\.txt: FileNotFoundError",
            r"listed: \[\]",
            r"found: \[\]",
        )
    },
)

READ_INPUTS = Cheat(
    "read-inputs",
    "recording what the hidden tests pass in, then raising it from a public test",
    {
        "solution.py": CODE.edit(
            hw1(""),
            '    raise NotImplementedError("evidence: " + " | ".join(EVIDENCE))\n',
            '    raise NotImplementedError(f"evidence: {len(SEEN)} calls before: {SEEN}")\n',
        )
        + """

SEEN = []  # the hidden tests run first: their inputs are in here by the public ones


def recording(function):
    def recorded(*args):
        SEEN.append(args)
        return function(*args)

    return recorded


word_count, unique_words, top_words = map(recording, (word_count, unique_words, top_words))
"""
    },
    {},
    "honest",
    {"hw1": (r"evidence: [1-9]\d* calls before: \[\(",)},
)

READ_THROUGH_PROC = Cheat(
    "read-through-proc",
    "reading the hidden tests through /proc (other processes' cwd, root, environ, cmdline, fds)",
    {
        "solution.py": hw1(
            """
HIDDEN = ".sphere-engine/tests/test_hidden.py"


def others():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


def through(pid):
    got, raw = {}, b""
    for what, path in (
        ("cwd", f"/proc/{pid}/cwd/{HIDDEN}"),
        ("root", f"/proc/{pid}/root/home/user/workspace/{HIDDEN}"),
        ("environ", f"/proc/{pid}/environ"),
        ("cmdline", f"/proc/{pid}/cmdline"),
    ):
        try:
            with open(path, "rb") as f:
                data = f.read()
            got[what] = b"SE_PATH_UNIT" in data or b"pytest" in data or b"def test_" in data
            if what == "cmdline":
                raw = data
        except OSError as exc:
            got[what] = type(exc).__name__
    try:
        got["fds"] = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError as exc:
        got["fds"] = type(exc).__name__
    return {**got, "raw": raw}


attempt("other pids", others)
attempt("pid 1", lambda: {k: v for k, v in through(1).items() if k != "raw"})
attempt("pytest anywhere", lambda: [p for p in others() if b"pytest" in through(p)["raw"]])
attempt("self root", lambda: os.listdir("/proc/self/root/home/user/workspace/.sphere-engine"))
attempt("mounts of tests", lambda: [m for m in open("/proc/self/mountinfo") if "engine/tests" in m])
"""
        )
    },
    {},
    "honest",
    {
        "hw1": (
            r"pid 1: \{'cwd': 'PermissionError', 'root': 'PermissionError', "
            r"'environ': 'PermissionError', 'cmdline': False, 'fds': 'PermissionError'\}",
            r"pytest anywhere: \[\]",
            r"self root: \[\]",
            r"mounts of tests: \[\]",
            r"other pids: \[1\]",
        )
    },
)

READ_FRAMES = Cheat(
    "read-frames",
    "looking for the tests through frames, tracebacks and the heap, then printing and raising them",
    {
        "solution.py": CODE.edit(
            hw1(""),
            '    raise NotImplementedError("evidence: " + " | ".join(EVIDENCE))\n',
            """    import gc, inspect, re, traceback
    frames = [f.filename for f in inspect.stack()]
    attempt("frames", lambda: sorted({os.path.basename(f) for f in frames}))
    stack = traceback.extract_stack()
    attempt("tests in the stack", lambda: any("engine/tests" in f.filename for f in stack))
    names = set()
    for o in gc.get_objects():
        for s in (o if isinstance(o, (list, tuple)) else o.values() if isinstance(o, dict) else ()):
            if isinstance(s, str):
                names.update(re.findall(r"test_(?:hidden|public)_\\w+", s))
    attempt("test names in memory", lambda: sorted(names))
    attempt("PYTEST_CURRENT_TEST", lambda: os.environ.get("PYTEST_CURRENT_TEST"))
    attempt("argv", lambda: sys.argv[1:])
    print("leaked:", sorted(names))
    raise NotImplementedError("evidence: " + " | ".join(EVIDENCE[-5:]))
""",
        )
    },
    {},
    "honest",
    {
        "hw1": (
            # only the worker's own frames: no test file among them
            r"frames: \[(?:'(?:<frozen runpy>|grader_harness\.py|solution\.py)'(?:, )?)+\]",
            r"tests in the stack: False",
            r"test names in memory: \[\]",
            r"PYTEST_CURRENT_TEST: None",
            r"argv: \['worker'\]",
        )
    },
)

PATCH_BUILTINS = Cheat(
    "patch-builtins",
    "monkeypatching builtins and pytest from the student's process",
    {
        "solution.py": hw1("""
import builtins
import types


class Passing(Exception):
    pass


def patch():
    builtins.AssertionError = Passing
    fake = types.ModuleType("pytest")
    fake.fail = fake.skip = lambda *a, **k: None
    sys.modules["pytest"] = sys.modules["_pytest"] = fake
    sys.settrace(lambda *a: None)
    return "done"


attempt("patched", patch)
attempt("pytest runner in this process", lambda: "_pytest.runner" in sys.modules)
""")
    },
    {},
    "honest",
    {"hw1": (r"patched: done", r"pytest runner in this process: False")},
)

PATCH_HARNESS = Cheat(
    "patch-harness",
    "monkeypatching the harness in the student's process (answers, encoding, the channel)",
    {
        "solution.py": hw1("""
import socket


def patch():
    harness = sys.modules.get("grader_harness") or sys.modules["__main__"]
    original = harness._Worker.answer

    def answer(self, request):  # a failure becomes a success whose value says so
        reply = original(self, request)
        if not reply.get("ok"):
            value = "patched: " + " | ".join(EVIDENCE)
            reply = {"ok": True, "value": value, "stdout": "", "stderr": ""}
        return reply

    harness._Worker.answer = answer
    harness.StudentObject.__eq__ = lambda self, other: True
    return harness.__name__


def peer():
    channel = socket.socket(fileno=int(os.environ["GRADER_HARNESS_FD"]))
    credentials = channel.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    pid, uid, gid = __import__("struct").unpack("3i", credentials)
    channel.detach()
    return f"pid {pid}"


attempt("patched", patch)
attempt("tests process", peer)
""")
    },
    {},
    "honest",
    {"hw1": (r"assert 'patched: patched: __main__ \| tests process: pid 0' == 3\.5",)},
)


# ------------------------------------------------------------------------ hw2: the attacks


def c_string(text: str) -> str:
    """``text`` as a C string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


HW2_STARTER = {
    ".gitignore": CODE.HW2_GITIGNORE,
    "README.md": CODE.HW2_README,
    "src/main.c": CODE.HW2_MAIN,
    "src/rpn.h": CODE.HW2_HEADER,
    "src/rpn.c": CODE.HW2_STARTER,
}

C_HEAD = """#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs before main(): the honest code in main.c and rpn.c is the starter's. */
static void show(const char *what, int failed)
{
    fprintf(stderr, "%s: %s\\n", what, failed ? strerror(errno) : "done");
}

static void fail_loudly(void)
{
    _exit(3); /* so the tests quote our stderr */
}
"""

C_FORGE = r"""
static const char *GUESSES[] = {
    "/sphere-engine/runtime/unit_tests_report.xml",
    "/sphere-engine/runtime/tests_report.json",
    "/sphere-engine/runtime/result.json",
    "../runtime/unit_tests_report.xml",
    "/home/user/runtime/unit_tests_report.xml",
    NULL,
};

/* The report with every <failure>...</failure> cut out, or one of our own. */
static int forge(const char *path)
{
    static char text[1 << 20];
    size_t size = 0;
    FILE *in = fopen(path, "r");
    if (in != NULL) {
        size = fread(text, 1, sizeof text - 1, in);
        fclose(in);
    }
    text[size] = '\0';
    char *cut;
    while ((cut = strstr(text, "<failure")) != NULL) {
        char *end = strstr(cut, "</failure>");
        if (end == NULL)
            break;
        memmove(cut, end + 10, strlen(end + 10) + 1);
    }
    if (size == 0)
        strcpy(text, "<testsuite><testcase name=\"test_public_addition\"/></testsuite>");
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return -1;
    fputs(text, out);
    return fclose(out);
}

static void forge_all(int say)
{
    const char *named = getenv("SE_PATH_UNIT_TESTS_REPORT");
    if (say)
        fprintf(stderr, "report path in the environment: %s\n", named ? named : "none");
    if (named != NULL && forge(named) != 0 && say)
        show(named, 1);
    for (int i = 0; GUESSES[i] != NULL; i++) {
        int failed = forge(GUESSES[i]) != 0;
        if (say)
            show(GUESSES[i], failed);
    }
}

static void forge_at_exit(void)
{
    forge_all(0);
}
"""

C_FORGE_DAEMON = Cheat(
    "c-forge-daemon",
    "prog leaves a background process rewriting the report paths (and forges at exit)",
    {},
    {
        **HW2_STARTER,
        "src/cheat.c": C_HEAD
        + C_FORGE
        + r"""
__attribute__((constructor)) static void cheat(void)
{
    forge_all(1);
    pid_t child = fork();
    if (child == 0) {
        setsid();
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        if (fork() == 0) {
            freopen("/dev/null", "r", stdin);
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            for (int round = 0; round < 20000; round++) { /* a minute or two */
                forge_all(0);
                usleep(5000);
            }
        }
        _exit(0);
    }
    fprintf(stderr, "racer started: %s\n", child > 0 ? "yes" : "no");
    atexit(fail_loudly);
    atexit(forge_at_exit);
}
""",
    },
    "starter",
    {
        "hw2": (
            r"report path in the environment: none",
            r"/sphere-engine/runtime/unit_tests_report.xml: No such file or directory",
            r"racer started: yes",
        )
    },
)

HIDDEN_C = "../.sphere-engine/tests/test_hidden.py"
C_PRINT_HIDDEN = Cheat(
    "c-print-hidden",
    "prog prints .sphere-engine/tests/test_hidden.py (by path, through /proc, #include if there)",
    {},
    {
        **HW2_STARTER,
        "src/cheat.c": C_HEAD
        + f"""
/* Where the grader keeps its tests, if the build could see them. */
#if __has_include("{HIDDEN_C}")
#define SEEN_AT_BUILD "yes"
static const char leaked[] = {{
#include "{HIDDEN_C}"
}};
#else
#define SEEN_AT_BUILD "no"
#endif
"""
        + r"""
static const char *PATHS[] = {
    ".sphere-engine/tests/test_hidden.py",
    "/home/user/workspace/.sphere-engine/tests/test_hidden.py",
    "/proc/1/root/home/user/workspace/.sphere-engine/tests/test_hidden.py",
    "/proc/1/cwd/.sphere-engine/tests/test_hidden.py",
    "hidden.py",
    NULL,
};

__attribute__((constructor)) static void cheat(void)
{
    fprintf(stderr, "included at build: %s\n", SEEN_AT_BUILD);
    for (int i = 0; PATHS[i] != NULL; i++) {
        FILE *in = fopen(PATHS[i], "r");
        if (in == NULL) {
            show(PATHS[i], 1);
            continue;
        }
        char text[4096];
        size_t size = fread(text, 1, sizeof text, in);
        fclose(in);
        fprintf(stderr, "%s: %zu bytes\n", PATHS[i], size);
        fwrite(text, 1, size, stdout); /* the feedback quotes what we print */
        fwrite(text, 1, size, stderr);
    }
    atexit(fail_loudly);
}
""",
        "hidden.py": Link(".sphere-engine/tests/test_hidden.py"),
    },
    "starter",
    {
        "hw2": (
            r"included at build: no",
            r"\.sphere-engine/tests/test_hidden\.py: No such file or directory",
            r"/proc/1/root/home/user/workspace/\.sphere-engine/tests/test_hidden\.py: "
            r"Permission denied",
            r"hidden\.py: No such file or directory",
        )
    },
)

C_INCLUDE = Cheat(
    "c-include",
    "#include of the hidden tests without a guard (a build error, quoting nothing hidden)",
    {},
    {**HW2_STARTER, "src/cheat.c": f'#include "{HIDDEN_C}"\n'},
    "starter",
    {"hw2": (r"test_hidden\.py: No such file or directory",)},
)

C_INCBIN = Cheat(
    "c-incbin",
    ".incbin of the hidden tests into the program (a build error)",
    {},
    {
        **HW2_STARTER,
        "src/cheat.c": '__asm__(".section .rodata\\n.global leaked\\nleaked:\\n'
        '.incbin \\".sphere-engine/tests/test_hidden.py\\"\\n.byte 0\\n.text");\n',
    },
    "starter",
    {"hw2": (r"file not found",)},
)

C_TAMPER = Cheat(
    "c-tamper",
    "prog deletes, replaces and links the instructor's tests and plants Python start-up files",
    {},
    {
        **HW2_STARTER,
        ".sphere-engine/tests/test_hidden.py": DECOY_TESTS,
        "conftest.py": cheat_conftest("c-tamper"),
        "src/cheat.c": C_HEAD
        + f"""
static const char PAYLOAD[] = {c_string(fired_py("c-tamper"))};
"""
        + r"""
#define USER "usercustomize.py"

static int plant(const char *path)
{
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return -1;
    fputs(PAYLOAD, out);
    return fclose(out);
}

__attribute__((constructor)) static void cheat(void)
{
    show("unlink", unlink(".sphere-engine/tests/test_hidden.py") != 0);
    show("overwrite", plant(".sphere-engine/tests/test_public.py") != 0);
    show("rename", rename(".sphere-engine", "gone") != 0);
    show("symlink", symlink("/dev/null", ".sphere-engine/tests/conftest.py") != 0);
    show("chmod", chmod(".sphere-engine", 0777) != 0);
    show("harness", plant("/sphere-engine/lib/grader_harness.py") != 0);
    system("mkdir -p ~/.local/lib/python3.11/site-packages ~/.local/lib/python3.12/site-packages");
    show("usercustomize", plant("/home/user/.local/lib/python3.11/site-packages/" USER) != 0);
    show("usercustomize 3.12", plant("/home/user/.local/lib/python3.12/site-packages/" USER) != 0);
    show("conftest", plant("conftest.py") != 0);
    atexit(fail_loudly);
}
""",
    },
    "starter",
    {
        "hw2": (
            r"unlink: (?!done)[A-Z]",  # an error's message
            r"overwrite: (?!done)[A-Z]",
            r"rename: (?!done)[A-Z]",
            r"symlink: (?!done)[A-Z]",
            r"chmod: (?!done)[A-Z]",
            r"harness: (?!done)[A-Z]",
            r"usercustomize: done",  # its own home: Python never reads it as a user site
        )
    },
    {"hw2": (r"submitted file \.sphere-engine/tests/test_hidden\.py dropped",)},
)


# ------------------------------------------------------------------ the course's students

HW1_README = {"README.md": CODE.HW1_README}
HONEST = Cheat(
    "honest",
    "none: hpatel's partial solution (75) and the C starter code",
    {"solution.py": HW1_HONEST},
    {},
    "honest",
)
STARTER = Cheat(
    "starter", "none: the starter code of both", {"solution.py": HW1_STARTER}, {}, "starter"
)
CHEATS = (
    CONFTEST,
    MODULE_HOOKS,
    SHADOW_MODULES,
    SHADOW_PACKAGES,
    SITE_FILES,
    EXIT_AT_IMPORT,
    KILL_EVERYTHING,
    FORGE_AT_IMPORT,
    FORGE_AT_EXIT,
    FORGE_DAEMON,
    REPLACED_TESTS,
    LINKED_TESTS,
    TAMPERED_TESTS,
    INI_FILES,
    ALWAYS_EQUAL,
    READ_BY_PATH,
    READ_INPUTS,
    READ_THROUGH_PROC,
    READ_FRAMES,
    PATCH_BUILTINS,
    PATCH_HARNESS,
    C_FORGE_DAEMON,
    C_PRINT_HIDDEN,
    C_INCLUDE,
    C_INCBIN,
    C_TAMPER,
)
STUDENTS = (HONEST, STARTER, *CHEATS)


def repository(student: Cheat, assignment: str) -> Files:
    """The files of ``student``'s repository for ``assignment`` (the starter code when their
    attack is on the other assignment)."""
    if assignment == "hw1":
        return {**HW1_README, **(student.hw1 or {"solution.py": HW1_STARTER})}
    return student.hw2 or HW2_STARTER
