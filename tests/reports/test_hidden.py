"""Hidden material: what counts, and the scrubber on the real shapes it reaches students in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from grader.config import TestRule, load_course
from grader.project_tests import read_project_files
from grader.reports.hidden import (
    REPLACEMENT,
    HiddenMaterial,
    hidden_material,
    line_key,
    non_trivial,
    scrub,
)
from grader.scoring import parse_tests_report

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
RULES = (
    TestRule("test_public_*", 1),
    TestRule("test_hidden_*", 2, "hidden"),
)


@lru_cache(maxsize=2)
def sample_material(assignment: str) -> tuple[HiddenMaterial, str]:
    """The sample assignment's hidden material and the text of its hidden test file."""
    course = load_course(SAMPLE)
    project = course.projects_dir / assignment
    files = read_project_files(project)
    material = hidden_material(files, course.assignment(assignment).tests)
    return material, files[".sphere-engine/tests/test_hidden.py"]


def hidden_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if non_trivial(line)]


def assert_no_hidden_line(text: str, hidden_file: str) -> None:
    flat = line_key(text)
    for line in hidden_lines(hidden_file):
        assert line_key(line) not in flat, line


# --- what is hidden ----------------------------------------------------------------------


def test_the_hidden_file_is_hidden_and_public_tests_and_conftest_are_not() -> None:
    material, hidden = sample_material("hw1")
    assert "test_hidden_word_count_punctuation" in material.names
    assert line_key('assert solution.average_word_length("a bb bb") == 1.67') in material.lines
    public = (SAMPLE / "projects/hw1/.sphere-engine/tests/test_public.py").read_text()
    conftest = (SAMPLE / "projects/hw1/.sphere-engine/tests/conftest.py").read_text()
    for line in [*public.splitlines(), *conftest.splitlines()]:
        assert line_key(line) not in material.lines, line
    assert hidden_lines(hidden)  # the file has lines worth hiding


@pytest.mark.parametrize(
    ("line", "worth_hiding"),
    [
        ('    assert rpn("1 2\\n") == "error: too many operands\\n"', True),
        ("def test_hidden_negative_numbers(rpn):", True),
        ('    text = "pear apple pear fig apple kiwi"', True),
        ('"""', False),
        ("    return x", False),
        ("import pytest", False),
        ("from __future__ import annotations", False),
        ('#include "rpn.h"', False),
        ("    assert x == 1", False),
        ("", False),
        ("    ]", False),
    ],
)
def test_a_line_is_worth_hiding_when_it_says_enough(line: str, worth_hiding: bool) -> None:
    assert non_trivial(line) is worth_hiding


def test_lines_the_public_files_also_have_are_not_hidden() -> None:
    files = {
        "tests/test_hidden.py": "def test_hidden_x():\n    assert compute_total(3) == 42\n",
        "tests/test_public.py": "def test_public_x():\n    assert compute_total(3) == 42\n",
    }
    material = hidden_material(files, RULES)
    assert material.lines == {line_key("def test_hidden_x():")}
    assert scrub("  assert compute_total(3) == 42", material) == "  assert compute_total(3) == 42"


def test_in_a_file_with_both_kinds_only_the_visible_tests_lines_stay_visible() -> None:
    files = {
        "tests/test_all.py": (
            "TABLE = {'alpha': 11, 'beta': 12}\n\n"
            "def test_public_add():\n    assert adder(2, 3) == 5\n\n"
            "@pytest.mark.slow\ndef test_hidden_add_negative():\n"
            "    assert adder(-2, -3) == -5\n"
        )
    }
    material = hidden_material(files, RULES)
    assert line_key("    assert adder(-2, -3) == -5") in material.lines
    assert line_key("TABLE = {'alpha': 11, 'beta': 12}") in material.lines
    assert line_key("    assert adder(2, 3) == 5") not in material.lines
    assert line_key("def test_public_add():") not in material.lines


def test_hidden_files_key_hides_files_that_name_no_test() -> None:
    files = {
        "data/expected.txt": "the secret expected output of case seven\n",
        "data/public.txt": "an ordinary sample input line here\n",
    }
    assert not hidden_material(files, RULES).lines
    material = hidden_material(files, RULES, hidden_files=["data/exp*"])
    assert material.lines == {line_key("the secret expected output of case seven")}


def test_a_visible_rule_that_wins_over_a_hidden_glob_keeps_its_test_visible() -> None:
    rules = (TestRule("test_hidden_but_public", 1), *RULES)
    material = hidden_material({}, rules)
    assert scrub("test_hidden_but_public failed", material) == "test_hidden_but_public failed"
    assert scrub("test_hidden_other failed", material) == "hidden test failed"


def test_hidden_names_become_the_feedback_label() -> None:
    material = hidden_material({}, RULES, report_names=["test_hidden_add"])
    labels = {"test_hidden_add": "hidden test 2"}
    text = "FAILED tests/t.py::test_hidden_add[3-4] and test_hidden_add, \\ntest_hidden_add"
    assert scrub(text, material, labels) == (
        "FAILED tests/t.py::hidden test 2 and hidden test 2, \\nhidden test 2"
    )
    assert scrub("test_hidden_zzz", material, labels) == "hidden test"
    assert scrub("my_test_hidden_add_helper", material, labels) == "my_test_hidden_add_helper"


def test_a_catch_all_hidden_glob_names_no_word_by_itself() -> None:
    material = hidden_material({}, (TestRule("*", 1, "hidden"),), report_names=["test_edge"])
    assert scrub("test_edge and other words", material) == "hidden test and other words"


# --- the real shapes ---------------------------------------------------------------------

STUDENT = """
from pathlib import Path

SECRET = Path(__file__).with_name("leak.txt").read_text()

def word_count(text):
    raise ValueError(SECRET)

def unique_words(text):
    return SECRET

def top_words(text, n):
    print(SECRET)
    return []
"""

PUBLIC = """
def test_public_raise(solution):
    assert solution.word_count("a b") == 2

def test_public_return(solution):
    assert solution.unique_words("a b") == ["a", "b"]

def test_public_print(solution):
    assert solution.top_words("a b", 1) == [("a", 1)]
"""

CONFTEST = """
import importlib, os, sys
import pytest
sys.path.append(os.getcwd())

@pytest.fixture
def solution():
    return importlib.import_module("solution")
"""


@pytest.fixture(scope="module")
def pytest_failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real pytest run: a student raises, returns and prints the hidden test file."""
    _, hidden = sample_material("hw1")
    root = tmp_path_factory.mktemp("leak")
    (root / "tests").mkdir()
    (root / "tests" / "test_public.py").write_text(PUBLIC)
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "solution.py").write_text(STUDENT)
    (root / "leak.txt").write_text(hidden)
    report = root / "report.xml"
    options = ["-o", "junit_family=xunit1", "-o", "junit_logging=all"]
    command = [sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", *options]
    subprocess.run(
        [*command, "tests", f"--junitxml={report}"],
        cwd=root,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        check=False,  # the tests fail on purpose
    )
    tests = parse_tests_report(report.read_text(encoding="utf-8"))
    return {t.name: f"{t.message}\n{t.output}" for t in tests}


@pytest.mark.parametrize(
    ("test", "shape"),
    [
        ("test_public_raise", "E       ValueError: "),  # the message, line by line
        ("test_public_return", "...n"),  # pytest's truncated repr of the returned text
        ("test_public_print", "Captured Out"),  # the printed file (junit_logging=all)
    ],
)
def test_pytest_failure_texts_lose_every_hidden_line(
    pytest_failures: dict[str, str], test: str, shape: str
) -> None:
    material, hidden = sample_material("hw1")
    text = pytest_failures[test]
    assert shape in text
    assert "def test_hidden_average_word_length_rounding(solution):" in text  # it leaked
    scrubbed = scrub(text, material)
    assert_no_hidden_line(scrubbed, hidden)
    assert "test_hidden_" not in scrubbed
    assert REPLACEMENT in scrubbed
    assert f"{test}(solution)" in scrubbed  # the student's own test still reads


def test_a_truncated_repr_loses_the_fragments_on_both_sides_of_the_cut(
    pytest_failures: dict[str, str],
) -> None:
    material, _ = sample_material("hw1")
    scrubbed = scrub(pytest_failures["test_public_return"], material)
    assert "Students see their points" not in scrubbed
    assert "Hidden tests for Homework 1" not in scrubbed


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_a_compiler_error_quoting_the_included_hidden_file_is_scrubbed(tmp_path: Path) -> None:
    material, hidden = sample_material("hw2")
    (tmp_path / "src").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hidden.py").write_text(hidden)
    # every line of the file through the preprocessor's error path: #error quotes it
    source = "".join(f"#error {line}\n" for line in hidden.splitlines() if line.strip())
    source += '#include "../tests/test_hidden.py"\n'
    (tmp_path / "src" / "main.c").write_text(source)
    done = subprocess.run(
        ["gcc", "-std=c11", "-c", "src/main.c", "-o", "main.o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Hidden tests for Homework 2" in done.stderr
    scrubbed = scrub(done.stderr, material)
    assert_no_hidden_line(scrubbed, hidden)
    assert "src/main.c" in scrubbed  # what is not hidden stays


def test_prog_output_in_a_public_tests_stderr_is_scrubbed() -> None:
    material, hidden = sample_material("hw2")
    tail = hidden[-500:]  # the hw2 conftest shows the last 500 characters of stderr
    message = f"Failed: prog exited with status 1\nstderr: {tail}"
    scrubbed = scrub(message, material)
    assert_no_hidden_line(scrubbed, hidden)
    assert scrubbed.startswith("Failed: prog exited with status 1\nstderr: ")


# --- properties ----------------------------------------------------------------------------

# hidden lines use letters a-j; the text around them never does, so it can never match
HIDDEN_WORD = st.text("abcdefghij", min_size=4, max_size=9)
OTHER_TEXT = st.text(
    st.characters(blacklist_characters="abcdefghijABCDEFGHIJ", blacklist_categories=("Cs",)),
    max_size=300,
)
SEPARATOR = st.sampled_from([" ", "  ", "\t", ", ", '("', '") == ', " = ", ".", "["])


@st.composite
def hidden_line(draw: st.DrawFn) -> str:
    words = draw(st.lists(HIDDEN_WORD, min_size=2, max_size=8))
    parts = [words[0]]
    for word in words[1:]:
        parts += [draw(SEPARATOR), word]
    indent = draw(st.sampled_from(["", "    ", "\t"]))
    line = indent + "".join(parts)
    assume(non_trivial(line))
    return line


def material_of(lines: list[str]) -> HiddenMaterial:
    return hidden_material({"tests/secret.txt": "\n".join(lines)}, (), hidden_files=["tests/*"])


@given(
    lines=st.lists(hidden_line(), min_size=1, max_size=5),
    before=OTHER_TEXT,
    after=OTHER_TEXT,
    quoting=st.sampled_from(["plain", "repr", "reindented", "prefixed"]),
)
@example(lines=["    assert solution.top_words(text, 3)"], before="", after="", quoting="repr")
def test_hidden_lines_embedded_anywhere_are_removed(
    lines: list[str], before: str, after: str, quoting: str
) -> None:
    block = "\n".join(lines)
    if quoting == "repr":
        block = repr(block)
    elif quoting == "reindented":
        block = "\n".join("  " + " ".join(line.split()) for line in lines)
    elif quoting == "prefixed":
        block = "\n".join(f"E       {line}" for line in lines)
    text = f"{before}\n{block}\n{after}"
    scrubbed = scrub(text, material_of(lines))
    for line in lines:
        assert line_key(line) not in line_key(scrubbed)
    assert REPLACEMENT in scrubbed
    assert scrubbed.startswith(before) and scrubbed.endswith(after)


@given(lines=st.lists(hidden_line(), min_size=1, max_size=5), text=OTHER_TEXT)
def test_text_without_hidden_material_is_unchanged(lines: list[str], text: str) -> None:
    assert scrub(text, material_of(lines)) == text


@given(text=st.text(max_size=300))
def test_sample_material_leaves_ordinary_text_alone(text: str) -> None:
    material, _ = sample_material("hw1")
    assume("test_hidden" not in text)
    assume(not any(len(w) > 6 for w in text.split()))  # far from any hidden line
    assert scrub(text, material) == text
