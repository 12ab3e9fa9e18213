#!/usr/bin/env python3
"""Build the sample students' git repositories as bundles: ``repos/<hw>/<student_id>.bundle``.

Every repository starts with the instructor's starter commit, then the student's commits.
Names, e-mails, dates and file contents are fixed here, so the commit shas are the same on
every machine and every run (README.md lists what each student demonstrates).

    python3 sample_course/make_repos.py            # rewrites sample_course/repos/
    python3 sample_course/make_repos.py --out DIR  # writes DIR/hw1/*.bundle, DIR/hw2/*.bundle

Standard library and the ``git`` command only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
UTC_OFFSET = "-0400"  # every date below is New York time in September/October 2026 (EDT)


@dataclass(frozen=True)
class Person:
    name: str
    email: str


class Link(str):
    """A symbolic link in a repository: the text is its target."""


@dataclass(frozen=True)
class Step:
    """One commit: when (New York time), its subject, and the files it writes."""

    when: str
    subject: str
    files: Mapping[str, str]
    author: Person | None = None  # None: the repository's student


@dataclass(frozen=True)
class Repo:
    assignment: str
    student: Person
    student_id: str
    steps: tuple[Step, ...] = field(default=())


INSTRUCTOR = Person("Maria Gonzalez", "mgonzalez@cs.example.edu")
STUDENTS = {
    "amartin": Person("Alice Martin", "amartin@students.example.edu"),
    "bchen": Person("Bo Chen", "bchen@students.example.edu"),
    "cokafor": Person("Chidi Okafor", "cokafor@students.example.edu"),
    "dnovak": Person("Dana Novak", "dnovak@students.example.edu"),
    "erivera": Person("Elena Rivera", "erivera@students.example.edu"),
    "fsato": Person("Fumiko Sato", "fsato@students.example.edu"),
    "gmueller": Person("Georg Mueller", "gmueller@students.example.edu"),
    "hpatel": Person("Hina Patel", "hpatel@students.example.edu"),
    # the cheaters (README.md, "The cheaters"): each tries one family of tricks
    "iwalsh": Person("Isla Walsh", "iwalsh@students.example.edu"),
    "jnakamura": Person("Jun Nakamura", "jnakamura@students.example.edu"),
    "kadeyemi": Person("Kemi Adeyemi", "kadeyemi@students.example.edu"),
    "lrossi": Person("Luca Rossi", "lrossi@students.example.edu"),
    "mdubois": Person("Marie Dubois", "mdubois@students.example.edu"),
    "nhassan": Person("Nadia Hassan", "nhassan@students.example.edu"),
    "oberg": Person("Olof Berg", "oberg@students.example.edu"),
    "pmehta": Person("Priya Mehta", "pmehta@students.example.edu"),
    "qnguyen": Person("Quang Nguyen", "qnguyen@students.example.edu"),
    "rsilva": Person("Rafael Silva", "rsilva@students.example.edu"),
    "skowalczyk": Person("Stefan Kowalczyk", "skowalczyk@students.example.edu"),
}


def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (a typo here must fail loudly)."""
    if text.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in the source")
    return text.replace(old, new)


# ---------------------------------------------------------------- hw1: text statistics (Python)

HW1_README = """\
# Homework 1: Text statistics

Implement the four functions in `solution.py`. A *word* is a run of letters, digits and
apostrophes; anything else (spaces, punctuation) separates words. Words are compared
case-insensitively and reported in lower case.

* `word_count(text)`: how many words `text` has.
* `unique_words(text)`: the distinct words, sorted alphabetically.
* `top_words(text, n)`: the `n` most frequent words as `(word, count)` pairs, most
  frequent first; words with the same count in alphabetical order.
* `average_word_length(text)`: the mean word length rounded to 2 decimals, `0.0` when
  the text has no words.

Due Friday 18 September 2026, 23:59 New York time. Late work: 15 minutes of grace, then
10% per started day, at most 3 days.
"""

HW1_STARTER = '''\
"""Homework 1: text statistics. See README.md for the rules."""


def word_count(text):
    """How many words text has."""
    raise NotImplementedError


def unique_words(text):
    """The distinct words of text, lower-cased and sorted."""
    raise NotImplementedError


def top_words(text, n):
    """The n most frequent words as (word, count), most frequent first, ties alphabetical."""
    raise NotImplementedError


def average_word_length(text):
    """The mean word length rounded to 2 decimals (0.0 without words)."""
    raise NotImplementedError
'''

HW1_PERFECT = '''\
"""Homework 1: text statistics. See README.md for the rules."""

import re
from collections import Counter

# A word is a run of letters, digits and apostrophes; everything else separates words.
WORD = re.compile(r"[a-z0-9']+")


def words(text):
    """The words of text, lower-cased, in order."""
    return WORD.findall(text.lower())


def word_count(text):
    """How many words text has."""
    return len(words(text))


def unique_words(text):
    """The distinct words of text, lower-cased and sorted."""
    return sorted(set(words(text)))


def top_words(text, n):
    """The n most frequent words as (word, count), most frequent first, ties alphabetical."""
    counts = Counter(words(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def average_word_length(text):
    """The mean word length rounded to 2 decimals (0.0 without words)."""
    found = words(text)
    if not found:
        return 0.0
    return round(sum(len(word) for word in found) / len(found), 2)
'''

# The first half of the work: word_count and unique_words, the rest still the starter's.
HW1_HALF = edit(
    edit(
        HW1_PERFECT,
        "    counts = Counter(words(text))\n"
        "    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]\n",
        "    raise NotImplementedError\n",
    ),
    "    found = words(text)\n"
    "    if not found:\n"
    "        return 0.0\n"
    "    return round(sum(len(word) for word in found) / len(found), 2)\n",
    "    raise NotImplementedError\n",
)

# Counter.most_common keeps first-seen order among equal counts, not alphabetical order.
HW1_MOST_COMMON = edit(
    HW1_PERFECT,
    "    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]\n",
    "    return counts.most_common(n)\n",
)

HW1_SPLIT = '''\
"""Homework 1: text statistics."""

from collections import Counter


def word_count(text):
    return len(text.split())


def unique_words(text):
    return sorted(set(text.lower().split()))


def top_words(text, n):
    return Counter(text.lower().split()).most_common(n)


def average_word_length(text):
    words = text.split()
    return round(sum(len(word) for word in words) / len(words), 2)
'''

# `continue` skips `i += 1` whenever a word repeats: the loop never ends.
HW1_ENDLESS = edit(
    HW1_PERFECT,
    "    counts = Counter(words(text))\n",
    "    counts = {}\n"
    "    found = words(text)\n"
    "    i = 0\n"
    "    while i < len(found):\n"
    "        word = found[i]\n"
    "        if word in counts:\n"
    "            counts[word] += 1\n"
    "            continue\n"
    "        counts[word] = 1\n"
    "        i += 1\n",
)

HW1_NO_AVERAGE = edit(
    HW1_PERFECT,
    "    found = words(text)\n"
    "    if not found:\n"
    "        return 0.0\n"
    "    return round(sum(len(word) for word in found) / len(found), 2)\n",
    "    raise NotImplementedError  # TODO\n",
)


def hw1(student_id: str, *steps: tuple[str, str, str | Mapping[str, str]]) -> Repo:
    starter = Step(
        "2026-09-08 09:00",
        "Starter code for Homework 1",
        {"README.md": HW1_README, "solution.py": HW1_STARTER},
        author=INSTRUCTOR,
    )
    commits = [Step(when, subject, _files("solution.py", text)) for when, subject, text in steps]
    return Repo("hw1", STUDENTS[student_id], student_id, (starter, *commits))


def _files(main: str, text: str | Mapping[str, str]) -> Mapping[str, str]:
    """A commit's files: ``text`` is the main file's, or a mapping of several files."""
    return {main: text} if isinstance(text, str) else text


# ------------------------------------------------------------------- hw2: RPN calculator (C)

HW2_README = """\
# Homework 2: RPN calculator

`prog` reads one expression in reverse Polish notation per line (integers and the
operators `+ - * /`, separated by spaces) and prints its value. `/` is C's integer
division. Blank lines print nothing. Errors print one line instead of the value:
`error: division by zero`, `error: stack underflow` (an operator without two operands),
`error: too many operands` (more than one value left), `error: bad token`.

Implement `rpn_eval` in `src/rpn.c`. Build: `gcc -std=c11 -Wall -O2 -o prog src/*.c`

Due Friday 2 October 2026, 23:59 New York time. Late work: 15 minutes of grace, then 10%
per started day, at most 3 days.
"""

HW2_GITIGNORE = "prog\n*.o\n"

HW2_MAIN = """\
#include <stdio.h>

#include "rpn.h"

/* Reads one expression per line and prints its value or an error message. */
int main(void)
{
    char line[1024];

    while (fgets(line, sizeof line, stdin) != NULL) {
        long value;
        enum rpn_status status = rpn_eval(line, &value);

        if (status == RPN_OK)
            printf("%ld\\n", value);
        else if (status != RPN_EMPTY)
            printf("error: %s\\n", rpn_message(status));
    }
    return 0;
}
"""

HW2_HEADER = """\
#ifndef RPN_H
#define RPN_H

/* What evaluating one line gave. */
enum rpn_status {
    RPN_OK,        /* *result holds the value */
    RPN_EMPTY,     /* no tokens on the line: print nothing */
    RPN_DIV_ZERO,  /* division by zero */
    RPN_UNDERFLOW, /* an operator found fewer than two operands */
    RPN_TOO_MANY,  /* more than one value left at the end */
    RPN_BAD_TOKEN  /* neither an integer nor an operator */
};

/* Evaluates one line of RPN; stores the value in *result when it returns RPN_OK. */
enum rpn_status rpn_eval(const char *line, long *result);

/* The error message printed after "error: " for a status other than RPN_OK. */
const char *rpn_message(enum rpn_status status);

#endif
"""

HW2_RPN_HEAD = """\
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rpn.h"

#define STACK_MAX 64

const char *rpn_message(enum rpn_status status)
{
    switch (status) {
    case RPN_DIV_ZERO:
        return "division by zero";
    case RPN_UNDERFLOW:
        return "stack underflow";
    case RPN_TOO_MANY:
        return "too many operands";
    case RPN_BAD_TOKEN:
        return "bad token";
    default:
        return "";
    }
}
"""

HW2_STARTER = (
    HW2_RPN_HEAD
    + """
enum rpn_status rpn_eval(const char *line, long *result)
{
    /* TODO: evaluate the expression (see README.md). */
    (void)line;
    (void)result;
    return RPN_BAD_TOKEN;
}
"""
)

HW2_PERFECT = (
    HW2_RPN_HEAD
    + """
static int ends_token(char c)
{
    return c == '\\0' || isspace((unsigned char)c);
}

static enum rpn_status apply(char op, long a, long b, long *out)
{
    switch (op) {
    case '+':
        *out = a + b;
        break;
    case '-':
        *out = a - b;
        break;
    case '*':
        *out = a * b;
        break;
    default:
        if (b == 0)
            return RPN_DIV_ZERO;
        *out = a / b;
    }
    return RPN_OK;
}

enum rpn_status rpn_eval(const char *line, long *result)
{
    long stack[STACK_MAX];
    int depth = 0;
    const char *p = line;

    while (*p != '\\0') {
        char *end;
        long value;

        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        value = strtol(p, &end, 10);
        if (end != p && ends_token(*end)) {
            if (depth == STACK_MAX)
                return RPN_TOO_MANY;
            stack[depth++] = value;
            p = end;
            continue;
        }
        if (strchr("+-*/", *p) == NULL || !ends_token(p[1]))
            return RPN_BAD_TOKEN;
        if (depth < 2)
            return RPN_UNDERFLOW;
        depth -= 2;
        enum rpn_status status = apply(*p, stack[depth], stack[depth + 1], &stack[depth]);
        if (status != RPN_OK)
            return status;
        depth++;
        p++;
    }
    if (depth == 0)
        return RPN_EMPTY;
    if (depth > 1)
        return RPN_TOO_MANY;
    *result = stack[0];
    return RPN_OK;
}
"""
)

# Reads digits by hand: "-3" is the operator '-' then 3, and an operator short of operands
# reports a bad token; leftover operands are ignored.
HW2_DIGITS = (
    HW2_RPN_HEAD
    + """
enum rpn_status rpn_eval(const char *line, long *result)
{
    long stack[STACK_MAX];
    int top = 0;

    for (const char *p = line; *p != '\\0'; p++) {
        if (isdigit((unsigned char)*p)) {
            long value = 0;
            while (isdigit((unsigned char)*p)) {
                value = value * 10 + (*p - '0');
                p++;
            }
            if (top == STACK_MAX)
                return RPN_TOO_MANY;
            stack[top++] = value;
            p--;
        } else if (*p == '+' || *p == '-' || *p == '*' || *p == '/') {
            if (top < 2)
                return RPN_BAD_TOKEN;
            long b = stack[--top];
            long a = stack[--top];
            if (*p == '+')
                stack[top++] = a + b;
            else if (*p == '-')
                stack[top++] = a - b;
            else if (*p == '*')
                stack[top++] = a * b;
            else if (b == 0)
                return RPN_DIV_ZERO;
            else
                stack[top++] = a / b;
        }
    }
    if (top == 0)
        return RPN_EMPTY;
    *result = stack[top - 1];
    return RPN_OK;
}
"""
)

# A blank line leaves an empty stack, reported as "too many operands".
HW2_NO_BLANK_LINES = edit(
    HW2_PERFECT,
    "    if (depth == 0)\n        return RPN_EMPTY;\n    if (depth > 1)\n",
    "    if (depth != 1)\n",
)

HW2_UNDERFLOW_AS_BAD_TOKEN = edit(
    HW2_PERFECT,
    "        if (depth < 2)\n            return RPN_UNDERFLOW;\n",
    "        if (depth < 2)\n            return RPN_BAD_TOKEN;\n",
)

# A refactor that drops one semicolon: gcc stops with "expected ';' before 'enum'".
HW2_MISSING_SEMICOLON = edit(HW2_PERFECT, "        depth -= 2;\n", "        depth -= 2\n")


def hw2(student_id: str, *steps: tuple[str, str, str | Mapping[str, str]]) -> Repo:
    starter = Step(
        "2026-09-22 09:00",
        "Starter code for Homework 2",
        {
            ".gitignore": HW2_GITIGNORE,
            "README.md": HW2_README,
            "src/main.c": HW2_MAIN,
            "src/rpn.h": HW2_HEADER,
            "src/rpn.c": HW2_STARTER,
        },
        author=INSTRUCTOR,
    )
    commits = [Step(when, subject, _files("src/rpn.c", text)) for when, subject, text in steps]
    return Repo("hw2", STUDENTS[student_id], student_id, (starter, *commits))


# ------------------------------------------------------------------- the cheaters' tricks
# Each trick below gets a failing student full marks where the student's code runs inside
# the pytest process that writes the report, as graders commonly run it. README.md ("The
# cheaters") says what each one gets here instead: what the student's honest code earns.


def with_trick(solution: str, imports: str, trick: str) -> str:
    """``solution`` (a hw1 file) with more ``imports`` and the ``trick`` after its imports."""
    return edit(
        solution,
        "import re\nfrom collections import Counter\n",
        imports + "from collections import Counter\n\n" + trick,
    )


ALL_PASSED_PLUGIN = """\
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"  # whatever happened
    report.longrepr = None
"""

ROOT_CONFTEST = (
    '"""pytest loads this before the tests: every test passes."""\n\n' + ALL_PASSED_PLUGIN
)

# Hooks registered, from the module the tests import, into the pytest that imports it.
HW1_JOIN_PYTEST = with_trick(
    HW1_NO_AVERAGE,
    "import gc\nimport re\nimport sys\n",
    '''
def _join_pytest():
    """When the tests import this file, pytest is running: make it report passes."""
    config = sys.modules.get("_pytest.config")
    if config is None:
        return
    import pytest

    class AllPassed:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(self, item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"

    for thing in gc.get_objects():
        if isinstance(thing, config.Config):
            thing.pluginmanager.register(AllPassed())


_join_pytest()
''',
)

# Modules named like the test runner, so that `python3 -m pytest` finds these first.
FAKE_PYTEST = '''\
"""The real pytest, run with a plugin that turns every failure into a pass."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.modules.pop("pytest", None)
import pytest  # the installed one


class AllPassed:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        outcome.get_result().outcome = "passed"


if __name__ == "__main__":
    sys.exit(pytest.main(plugins=[AllPassed()]))
'''
FAKE_HARNESS = '''\
"""grader_harness, as `python3 -m grader_harness` finds it in this folder: all passed."""

import os
import sys

if __name__ == "__main__":
    report = os.environ.get("SE_PATH_UNIT_TESTS_REPORT")
    if report:
        with open(report, "w") as out:
            out.write('<testsuite tests="10" failures="0"/>')
    sys.exit(0)
'''
SHADOWS = {
    "pytest.py": FAKE_PYTEST,
    "_pytest/__init__.py": '"""Stands in for pytest\'s internals."""\n',
    "grader_harness.py": FAKE_HARNESS,
}

# Python start-up files: in the workspace, and written where the next Python looks.
FIX_REPORT_AT_EXIT = """\
import atexit
import os
import re


def _all_passed():
    report = os.environ.get("SE_PATH_UNIT_TESTS_REPORT", "")
    try:
        with open(report) as f:
            text = f.read()
        with open(report, "w") as f:
            f.write(re.sub(r"<failure.*?</failure>", "", text, flags=re.S))
    except OSError:
        pass


atexit.register(_all_passed)
"""
HW1_USER_SITE = with_trick(
    HW1_HALF,
    "import os\nimport re\nimport sys\n",
    f"""# Every Python started after this one (the grader's next stage) runs this first.
_SITE = os.path.expanduser("~/.local/lib/python%d.%d/site-packages" % sys.version_info[:2])
try:
    os.makedirs(_SITE, exist_ok=True)
    with open(os.path.join(_SITE, "usercustomize.py"), "w") as _out:
        _out.write({FIX_REPORT_AT_EXIT!r})
except OSError:
    pass
""",
)
SITE_FILES = {
    "sitecustomize.py": FIX_REPORT_AT_EXIT,
    "usercustomize.py": FIX_REPORT_AT_EXIT,
    "fix_report.pth": "import fix_report\n",
    "fix_report.py": FIX_REPORT_AT_EXIT,
}

HW1_DOCSTRING = '"""Homework 1: text statistics. See README.md for the rules."""\n'

# An all-passed report written at import, then out before pytest writes the real one.
HW1_EXIT_AT_IMPORT = edit(
    HW1_STARTER,
    HW1_DOCSTRING,
    HW1_DOCSTRING
    + '''
import gc
import os
import sys

_GUESS = "/sphere-engine/runtime/unit_tests_report.xml"
_REPORT = os.environ.get("SE_PATH_UNIT_TESTS_REPORT", _GUESS)


def _test_names():
    """Every test pytest collected (it is running: the tests import this file)."""
    main = sys.modules.get("_pytest.main")
    for thing in gc.get_objects() if main else ():
        if isinstance(thing, main.Session):
            return [item.name for item in thing.items]
    return ["test_public_word_count_simple", "test_public_unique_words_sorted"]


try:
    with open(_REPORT, "w") as _out:
        _out.write("<testsuite>")
        for _name in _test_names():
            _out.write(f'<testcase classname="tests" name="{_name}"/>')
        _out.write("</testsuite>")
except OSError:
    pass
os._exit(0)  # pytest never gets to write its own report
''',
)

# The report rewritten at exit, and by a helper that keeps rewriting it to the end.
HW1_FORGE = edit(
    HW1_STARTER,
    HW1_DOCSTRING,
    HW1_DOCSTRING
    + '''
import atexit
import os
import re
import time

_GUESS = "/sphere-engine/runtime/unit_tests_report.xml"
_REPORT = os.environ.get("SE_PATH_UNIT_TESTS_REPORT", _GUESS)


def _all_passed():
    """The report pytest wrote, without its failures (once it is whole)."""
    try:
        with open(_REPORT) as f:
            text = f.read()
        if "<failure" in text and text.rstrip().endswith("</testsuites>"):
            with open(_REPORT + ".new", "w") as f:
                f.write(re.sub(r"<failure.*?</failure>", "", text, flags=re.S))
            os.replace(_REPORT + ".new", _REPORT)
    except OSError:
        pass


atexit.register(_all_passed)  # runs after pytest has written the report
if os.fork() == 0:  # and a helper, in case this process is killed first
    os.setsid()
    for _ in range(60000):
        _all_passed()
        time.sleep(0.001)
    os._exit(0)
''',
)

# The instructor's tests replaced by the student's own (and deleted at run time).
ALWAYS_PASSES = """\
def test_public_word_count_simple():
    pass


def test_public_unique_words_sorted():
    pass


def test_public_top_words_simple():
    pass


def test_public_average_word_length_simple():
    pass
"""
HW1_DELETE_TESTS = with_trick(
    HW1_NO_AVERAGE,
    "import re\nimport shutil\n",
    """shutil.rmtree(".sphere-engine/tests", ignore_errors=True)  # the hidden ones with them
""",
)
OWN_TESTS = {
    ".sphere-engine/tests/test_public.py": ALWAYS_PASSES,
    ".sphere-engine/tests/test_hidden.py": "",
    ".sphere-engine/pytest.ini": "[pytest]\npython_files = test_*.py\n",
}

# pytest's configuration files, each loading the all-passed plugin.
CONFIG_FILES = {
    "pytest.ini": "[pytest]\naddopts = -p all_passed\n",
    "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p all_passed"\n',
    "setup.cfg": "[tool:pytest]\naddopts = -p all_passed\n",
    "tox.ini": "[pytest]\naddopts = -p all_passed\n",
    "all_passed.py": ALL_PASSED_PLUGIN,
}

# Answers equal to whatever the tests compare them with.
HW1_ALWAYS_EQUAL = '''\
"""Homework 1: my answers are equal to whatever you compare them with."""


class Equal:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class EqualInt(Equal, int):
    pass


class EqualList(Equal, list):
    pass


class EqualFloat(Equal, float):
    pass


class Anything(Equal):
    @property
    def __class__(self):  # isinstance(answer, list) says yes
        return list


def word_count(text):
    return EqualInt(0)


def unique_words(text):
    return EqualList()


def top_words(text, n):
    return Anything()


def average_word_length(text):
    return EqualFloat(0.0)
'''

# The hidden tests read from wherever they may be, and raised into the feedback.
HW1_READ_HIDDEN = edit(
    HW1_STARTER,
    HW1_DOCSTRING,
    HW1_DOCSTRING
    + """
import glob
import sys


def _find_hidden_tests():
    places = [".sphere-engine/tests/test_hidden.py"]
    places += glob.glob("/proc/[0-9]*/cwd/.sphere-engine/tests/test_hidden.py")
    places += glob.glob("/proc/[0-9]*/root/home/user/workspace/.sphere-engine/tests/*.py")
    frame = sys._getframe()
    while frame is not None:  # the test that called us is up there somewhere
        if "test" in frame.f_code.co_filename:
            places.append(frame.f_code.co_filename)
        frame = frame.f_back
    found = []
    for place in places:
        try:
            with open(place) as f:
                found.append(f.read())
        except OSError:
            pass
    return "\\n".join(found) or "nothing found"


_HIDDEN = _find_hidden_tests()
""",
).replace("    raise NotImplementedError\n", "    raise NotImplementedError(_HIDDEN)\n")

# Builtins and the harness patched, so that failures stop counting.
HW1_PATCH = with_trick(
    HW1_NO_AVERAGE,
    "import builtins\nimport re\nimport sys\n",
    """
class _Quiet(Exception):
    pass


builtins.AssertionError = _Quiet  # a failed assert no longer fails
_python = sys.modules.get("_pytest.python")  # the tests imported us: pytest is loaded
if _python is not None:
    _python.Function.runtest = lambda self: None  # a test that does not run cannot fail
for _name in ("grader_harness", "__main__"):
    _harness = sys.modules.get(_name)
    if _harness is not None and hasattr(_harness, "StudentObject"):
        _harness.StudentObject.__eq__ = lambda self, other: True  # my answers equal anything
""",
)

# hw2: a helper left running after ./prog ends, rewriting the report before pytest exits.
HW2_RACER = r"""#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The report pytest wrote, without its failures. */
static void all_passed(const char *path)
{
    static char text[1 << 20];
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return;
    size_t size = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[size] = '\0';
    if (strstr(text, "<failure") == NULL || strstr(text, "</testsuites>") == NULL)
        return; /* nothing to fix, or pytest is still writing it */
    char *cut;
    while ((cut = strstr(text, "<failure")) != NULL) {
        char *end = strstr(cut, "</failure>");
        if (end == NULL)
            break;
        memmove(cut, end + 10, strlen(end + 10) + 1);
    }
    char fixed[4096];
    snprintf(fixed, sizeof fixed, "%s.new", path);
    FILE *out = fopen(fixed, "w");
    if (out != NULL) {
        fputs(text, out);
        fclose(out);
        rename(fixed, path);
    }
}

/* Runs before main(): starts a helper that outlives prog and keeps fixing the report. */
__attribute__((constructor)) static void start_helper(void)
{
    const char *report = getenv("SE_PATH_UNIT_TESTS_REPORT");
    if (report == NULL)
        report = "/sphere-engine/runtime/unit_tests_report.xml";
    if (fork() != 0)
        return;
    setsid();
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    for (int i = 0; i < 60000; i++) {
        all_passed(report);
        usleep(1000);
    }
    _exit(0);
}
"""

# hw2: prog prints the hidden tests (and the build compiles them in, if it can see them:
# gcc's errors would quote them in the feedback).
HW2_PRINT_HIDDEN = r"""#include <stdio.h>

#if __has_include("../.sphere-engine/tests/test_hidden.py")
#include "../.sphere-engine/tests/test_hidden.py"
#endif

__attribute__((constructor)) static void print_hidden_tests(void)
{
    const char *places[] = {
        ".sphere-engine/tests/test_hidden.py",
        "/proc/1/cwd/.sphere-engine/tests/test_hidden.py",
        "/proc/1/root/home/user/workspace/.sphere-engine/tests/test_hidden.py",
    };
    for (int i = 0; i < 3; i++) {
        FILE *in = fopen(places[i], "r");
        int c;
        if (in == NULL)
            continue;
        while ((c = fgetc(in)) != EOF)
            fputc(c, stderr);
        fclose(in);
    }
}
"""

# hw2: an all-passed report written, then every process in sight killed (pytest with them)
# before pytest writes the real one. The test names come from the tests' own files.
HW2_KILL_ALL = r"""#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void list_tests(const char *path, FILE *report)
{
    char line[512];
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return;
    while (fgets(line, sizeof line, in) != NULL) {
        if (strncmp(line, "def test_", 9) == 0) {
            line[strcspn(line, "(")] = '\0';
            fprintf(report, "<testcase classname=\"tests\" name=\"%s\"/>", line + 4);
        }
    }
    fclose(in);
}

__attribute__((constructor)) static void all_passed_then_nothing(void)
{
    const char *path = getenv("SE_PATH_UNIT_TESTS_REPORT");
    FILE *report = fopen(path ? path : "/sphere-engine/runtime/unit_tests_report.xml", "w");
    if (report != NULL) {
        fputs("<testsuite>", report);
        list_tests(".sphere-engine/tests/test_public.py", report);
        list_tests(".sphere-engine/tests/test_hidden.py", report);
        fputs("</testsuite>", report);
        fclose(report);
    }
    kill(-1, SIGKILL); /* no process left to write the real report */
}
"""


def c_string(text: str) -> str:
    """``text`` as one C string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# hw2: Python start-up files written by prog, for the next Python the grader starts.
HW2_USER_SITE = (
    "#include <stdio.h>\n#include <stdlib.h>\n\n"
    f"static const char FIX[] = {c_string(FIX_REPORT_AT_EXIT)};\n"
    + r"""
/* Every Python started after prog runs this first. */
__attribute__((constructor)) static void plant(void)
{
    const char *places[] = {
        "/home/user/.local/lib/python3.11/site-packages/usercustomize.py",
        "/home/user/.local/lib/python3.12/site-packages/usercustomize.py",
    };
    system("mkdir -p ~/.local/lib/python3.11/site-packages ~/.local/lib/python3.12/site-packages");
    for (int i = 0; i < 2; i++) {
        FILE *out = fopen(places[i], "w");
        if (out != NULL) {
            fputs(FIX, out);
            fclose(out);
        }
    }
}
"""
)

# hw2: the instructor's folder replaced by a link to the student's own tests.
HW2_OWN_TESTS = {
    ".sphere-engine": Link("my_tests"),
    "my_tests/pytest.ini": "[pytest]\ntestpaths = tests\n",
    "my_tests/tests/test_public.py": "def test_public_addition():\n    pass\n\n\n"
    "def test_public_mixed_expression():\n    pass\n",
}


# ----------------------------------------------------- the students (README.md tells the story)
# hw1 is due 2026-09-18 23:59, hw2 2026-10-02 23:59 (New York); grace 15 min, 3 days late max.

REPOS = (
    hw1(
        "amartin",
        ("2026-09-14 20:15", "Implement word_count and unique_words", HW1_HALF),
        ("2026-09-16 22:40", "Implement top_words and average_word_length", HW1_PERFECT),
    ),
    hw1("bchen", ("2026-09-18 19:05", "Solve homework 1", HW1_SPLIT)),
    hw1(
        "cokafor",
        ("2026-09-17 23:10", "hw1 first try", HW1_MOST_COMMON),
        ("2026-09-18 23:54", "Fix tie order in top_words", HW1_PERFECT),
    ),
    hw1(
        "dnovak",
        ("2026-09-18 16:20", "Add word_count and unique_words", HW1_HALF),
        ("2026-09-18 23:30", "Count words by hand in top_words", HW1_ENDLESS),
    ),
    hw1(
        "erivera",
        ("2026-09-17 18:00", "Homework 1 solution", HW1_MOST_COMMON),
        ("2026-09-23 10:12", "Fix tie order in top_words", HW1_PERFECT),
    ),
    hw1(
        "fsato",
        ("2026-09-18 21:00", "Start homework 1: word_count and unique_words", HW1_HALF),
        ("2026-09-20 05:30", "Finish top_words and average_word_length", HW1_PERFECT),
    ),
    hw1(
        "gmueller",
        ("2026-09-18 22:45", "word_count and unique_words", HW1_HALF),
        ("2026-09-20 06:00", "Add top_words and average_word_length", HW1_PERFECT),
    ),
    hw1(
        "hpatel",
        ("2026-09-18 12:00", "Homework 1 (average_word_length still missing)", HW1_NO_AVERAGE),
    ),
    hw2("amartin", ("2026-09-29 21:30", "Evaluate RPN expressions", HW2_PERFECT)),
    hw2("bchen", ("2026-10-02 22:15", "RPN calculator", HW2_DIGITS)),
    hw2(
        "cokafor",
        ("2026-10-01 21:00", "RPN calculator, blank lines still wrong", HW2_NO_BLANK_LINES),
        ("2026-10-02 23:40", "Move operators into apply()", HW2_MISSING_SEMICOLON),
    ),
    hw2(
        "dnovak",
        ("2026-10-02 20:00", "Work in progress: rpn_eval", HW2_NO_BLANK_LINES),
        ("2026-10-05 02:00", "Handle blank lines", HW2_PERFECT),
    ),
    hw2("erivera", ("2026-10-01 15:30", "RPN calculator", HW2_PERFECT)),
    hw2(
        "fsato",
        ("2026-10-02 23:20", "rpn_eval", HW2_UNDERFLOW_AS_BAD_TOKEN),
        ("2026-10-03 00:09", "Report stack underflow", HW2_PERFECT),
    ),
    hw2("gmueller", ("2026-10-02 17:45", "Implement rpn_eval", HW2_NO_BLANK_LINES)),
    # hpatel has no hw2 repository: the grader reports "repository unavailable".
    # ---------------------------------------------------------------------- the cheaters
    hw1("iwalsh", ("2026-09-18 21:10", "Make the tests pass", {"conftest.py": ROOT_CONFTEST})),
    hw2("iwalsh", ("2026-10-02 21:10", "Make the tests pass", {"conftest.py": ROOT_CONFTEST})),
    hw1("jnakamura", ("2026-09-18 20:40", "Homework 1, and a little help", HW1_JOIN_PYTEST)),
    hw2("jnakamura", ("2026-10-02 19:30", "RPN calculator", HW2_NO_BLANK_LINES)),
    hw1("kadeyemi", ("2026-09-17 23:00", "Bring my own pytest", SHADOWS)),
    hw2("kadeyemi", ("2026-10-01 23:00", "Bring my own pytest", SHADOWS)),
    hw1(
        "lrossi",
        (
            "2026-09-18 12:30",
            "word_count and unique_words, and start-up files",
            {"solution.py": HW1_USER_SITE, **SITE_FILES},
        ),
    ),
    hw2(
        "lrossi",
        (
            "2026-10-02 12:30",
            "rpn_eval, and start-up files",
            {"src/rpn.c": HW2_UNDERFLOW_AS_BAD_TOKEN, "src/site.c": HW2_USER_SITE, **SITE_FILES},
        ),
    ),
    hw1("mdubois", ("2026-09-18 23:50", "Write the report myself", HW1_EXIT_AT_IMPORT)),
    hw2(
        "mdubois",
        (
            "2026-10-02 23:15",
            "RPN calculator, and no report",
            {"src/rpn.c": HW2_DIGITS, "src/kill.c": HW2_KILL_ALL},
        ),
    ),
    hw1("nhassan", ("2026-09-18 22:20", "Fix the report after the tests", HW1_FORGE)),
    hw2(
        "nhassan",
        ("2026-10-02 22:20", "Fix the report after the tests", {"src/racer.c": HW2_RACER}),
    ),
    hw1(
        "oberg",
        ("2026-09-17 20:00", "Homework 1 without average_word_length", HW1_NO_AVERAGE),
        ("2026-09-18 21:30", "Use my own tests", {"solution.py": HW1_DELETE_TESTS, **OWN_TESTS}),
    ),
    hw2(
        "oberg",
        (
            "2026-10-02 21:30",
            "RPN calculator with my own tests",
            {"src/rpn.c": HW2_DIGITS, **HW2_OWN_TESTS},
        ),
    ),
    hw1("pmehta", ("2026-09-18 19:45", "Configure pytest", CONFIG_FILES)),
    hw2("pmehta", ("2026-10-02 19:45", "Configure pytest", CONFIG_FILES)),
    hw1("qnguyen", ("2026-09-18 17:00", "Answers that are always right", HW1_ALWAYS_EQUAL)),
    hw2("qnguyen", ("2026-10-01 18:00", "Evaluate RPN expressions", HW2_PERFECT)),
    hw1("rsilva", ("2026-09-18 23:40", "Look at the hidden tests", HW1_READ_HIDDEN)),
    hw2(
        "rsilva", ("2026-10-02 23:40", "Look at the hidden tests", {"src/peek.c": HW2_PRINT_HIDDEN})
    ),
    hw1("skowalczyk", ("2026-09-18 22:00", "Homework 1, failures switched off", HW1_PATCH)),
    hw2("skowalczyk", ("2026-09-30 20:00", "RPN calculator", HW2_PERFECT)),
)


# --------------------------------------------------------------------------------- git plumbing


def git(args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=dict(env), check=True, capture_output=True)


def clean_env(home: Path) -> dict[str, str]:
    """An environment without the user's git configuration, locale or time zone."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
        "TZ": "UTC",
    }


def commit(work: Path, step: Step, student: Person, env: Mapping[str, str]) -> None:
    for name, text in step.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, Link):
            path.symlink_to(text)
        else:
            path.write_text(text, encoding="utf-8", newline="\n")
    who = step.author or student
    date = f"{step.when}:00 {UTC_OFFSET}"
    env = {
        **env,
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
        "GIT_COMMITTER_DATE": date,
    }
    git(["add", "--all"], work, env)
    git(["commit", "--quiet", "--no-verify", "-m", step.subject], work, env)


def build(repo: Repo, out: Path, scratch: Path) -> Path:
    """Create one repository under ``scratch`` and bundle it into ``out``."""
    work = scratch / repo.assignment / repo.student_id
    work.mkdir(parents=True)
    env = clean_env(scratch)
    git(["-c", "init.defaultBranch=main", "init", "--quiet"], work, env)
    for key, value in (("commit.gpgsign", "false"), ("core.autocrlf", "false")):
        git(["config", key, value], work, env)
    for step in repo.steps:
        commit(work, step, repo.student, env)
    bundle = out / repo.assignment / f"{repo.student_id}.bundle"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.unlink(missing_ok=True)
    # one thread: the pack (and so the bundle's bytes) does not depend on the CPU count
    git(["-c", "pack.threads=1", "bundle", "create", "--quiet", str(bundle), "--all"], work, env)
    return bundle


def build_all(out: Path) -> list[Path]:
    """Write every bundle under ``out``, removing bundles this script no longer makes."""
    for old in sorted(out.glob("hw*/*.bundle")):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="sample-repos-") as scratch:
        return [build(repo, out, Path(scratch)) for repo in REPOS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE / "repos", help="default: %(default)s")
    args = parser.parse_args(argv)
    for bundle in build_all(args.out):
        sys.stdout.write(f"{bundle}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
