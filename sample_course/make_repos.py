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


def hw1(student_id: str, *steps: tuple[str, str, str]) -> Repo:
    starter = Step(
        "2026-09-08 09:00",
        "Starter code for Homework 1",
        {"README.md": HW1_README, "solution.py": HW1_STARTER},
        author=INSTRUCTOR,
    )
    commits = [Step(when, subject, {"solution.py": text}) for when, subject, text in steps]
    return Repo("hw1", STUDENTS[student_id], student_id, (starter, *commits))


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


def hw2(student_id: str, *steps: tuple[str, str, str]) -> Repo:
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
    commits = [Step(when, subject, {"src/rpn.c": text}) for when, subject, text in steps]
    return Repo("hw2", STUDENTS[student_id], student_id, (starter, *commits))


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
