"""grader_harness's plain data: what crosses between the tests and the student's process."""

from __future__ import annotations

import collections
import decimal
import enum
import fractions
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader import harness
from grader.engine.sandbox.broker import RequestError, parse_request

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False)
    | st.fractions()
    | st.decimals(allow_nan=False)
)
hashable = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4), max_leaves=8
)
plain = st.recursive(
    scalars | hashable,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable, inner, max_size=4)
        | st.sets(hashable, max_size=4)
        | st.builds(bytearray, st.binary())
    ),
    max_leaves=20,
)


def crossed(value: Any) -> Any:
    """``value`` after a trip through the wire format (JSON text, as the sockets carry it)."""
    text = json.dumps(harness.encode(value), allow_nan=False)
    return harness.decode(json.loads(text))


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@given(plain)
def test_plain_data_crosses_unchanged_with_its_exact_types(value: Any) -> None:
    assert same(crossed(value), value)


def test_special_floats_and_big_integers_cross_exactly() -> None:
    for value in (float("inf"), float("-inf"), -0.0, 2**200, -(2**64) - 1, 0.1):
        assert same(crossed(value), value)
    assert math.isnan(crossed(float("nan")))
    assert math.copysign(1, crossed(-0.0)) == -1


def test_subclasses_arrive_as_their_base_type_read_through_the_base_class() -> None:
    class Shouty(str):
        def __str__(self) -> str:
            return "LIES"

    class Color(enum.IntEnum):
        RED = 1

    point = collections.namedtuple("point", "x y")
    student_side = harness.encode(
        [collections.Counter("aab"), point(1, 2), Color.RED, Shouty("calm")], lambda v: 1
    )
    assert same(harness.decode(student_side), [{"a": 2, "b": 1}, (1, 2), 1, "calm"])


def test_a_student_object_becomes_a_handle_never_equal_to_plain_data() -> None:
    class Liar:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    numbers: list[Any] = []

    def handle(value: Any) -> int:
        numbers.append(value)
        return len(numbers)

    wire = harness.encode([Liar(), 3], handle)
    value = harness.decode(wire, lambda n, kind: harness.StudentObject(n, kind, 1))
    assert value[0] != [1, 2] and value[0] != 3 and value[0] != value[1]
    assert value == [harness.StudentObject(1, "Liar", 1), 3]
    assert "Liar" in repr(value[0])


def test_the_tests_side_refuses_what_is_not_plain_data() -> None:
    with pytest.raises(harness._NotPlain, match="not plain data"):
        harness.encode([object()])
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(harness._NotPlain, match="contains itself"):
        harness.encode(looped)
    deep: list[Any] = []
    for _ in range(harness.DEPTH_CAP + 5):
        deep = [deep]
    with pytest.raises(harness._NotPlain, match="levels deep"):
        harness.encode(deep)


@pytest.mark.parametrize(
    "wire",
    [
        {"$tuple": [1], "extra": 2, "more": 3},
        {"$unknown": []},
        {"$dict": [[1]]},
        {"$int": 5},
        {"$handle": 1},  # no handles where none are expected
        {"key": "a plain JSON object is never a value"},
        {"$set": [[1, 2]]},  # an unhashable member
    ],
)
def test_decoding_refuses_anything_but_the_documented_tags(wire: Any) -> None:
    with pytest.raises((harness._NotPlain, TypeError, ValueError)):
        harness.decode(wire)


def test_raises_matches_the_students_exception_by_name_or_base_class() -> None:
    error = harness.StudentError("f()", "KeyError", "'x'", ["KeyError", "LookupError"])
    with harness.raises("LookupError") as caught:
        raise error
    assert caught["error"] is error
    with pytest.raises(AssertionError, match="expected ValueError"), harness.raises("ValueError"):
        raise error
    with pytest.raises(AssertionError, match="did not"), harness.raises("ValueError"):
        pass
    with pytest.raises(AssertionError, match="does not match"), harness.raises("KeyError", "y"):
        raise error


def test_a_timeout_reads_as_what_happened() -> None:
    assert str(harness.StudentTimeout("solution.f()", 1.0)) == "timed out after 1 s: solution.f()"
    scope = harness.StudentTimeout("run ./prog", 2.5, "test")
    assert "timed out after 2.5 s (the test's limit)" in str(scope)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"argv": []}', "argv must be"),
        (b'{"argv": ["a\\u0000b"]}', "NUL"),
        (b'{"argv": ["x"], "cwd": "../up"}', "cwd must be"),
        (b'{"argv": ["x"], "cwd": "/etc"}', "cwd must be"),
        (b'{"argv": ["x"], "stdio": "file"}', "stdio must be"),
        (b'{"argv": ["x"], "timeout": -1}', "timeout must be"),
        (b'{"argv": ["x"], "timeout": true}', "timeout must be"),
    ],
)
def test_the_broker_refuses_malformed_requests(line: bytes, problem: str) -> None:
    with pytest.raises(RequestError, match=problem):
        parse_request(line)


def test_the_broker_reads_a_request_into_checked_values() -> None:
    request = parse_request(b'{"argv": ["./prog", "-x"], "cwd": "./sub/", "control": true}')
    assert request.argv == ("./prog", "-x") and request.cwd == "sub" and request.control
    assert request.pipes and request.timeout == 60.0


def test_decimals_and_fractions_keep_their_exact_value() -> None:
    assert same(crossed(decimal.Decimal("0.1")), decimal.Decimal("0.1"))
    assert same(crossed(fractions.Fraction(1, 3)), fractions.Fraction(1, 3))
    assert same(crossed(range(1, 10, 3)), range(1, 10, 3))


def test_the_students_process_starts_light(tmp_path: Path) -> None:
    """Importing the harness (what every start of the student's process does) imports
    none of the modules only the tests' side or a rare value needs; a Decimal still
    crosses once the student's code has made one."""
    (tmp_path / "grader_harness.py").write_bytes(Path(harness.__file__).read_bytes())
    heavy = ["subprocess", "tempfile", "shutil", "typing", "threading",
             "decimal", "fractions", "traceback", "base64"]  # fmt: skip
    code = (
        "import sys, grader_harness as h\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "import decimal\n"
        "print(h.encode(decimal.Decimal('1.5')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-s", "-P", "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["[]", "{'$decimal': '1.5'}"], done.stderr
