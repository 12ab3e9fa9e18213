"""Winnowed fingerprints and pair scores, with plain texts (grader/winnowing.py, similarity.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from grader.similarity import (
    PairScore,
    Workspace,
    candidate_pairs,
    common_limit,
    compare_all,
    fingerprinted,
    fragments,
    score_pair,
    without_common,
)
from grader.winnowing import (
    boilerplate_hashes,
    code_files,
    fingerprints,
    kgram_hashes,
    language_of,
    normalize,
)

SOLUTION = """
def average(numbers):
    total = 0
    for n in numbers:
        total += n
    return total / len(numbers)


def largest(values):
    best = values[0]
    for v in values[1:]:
        if v > best:
            best = v
    return best


def count_words(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts
"""

# every name changed, comments and blank lines added, the functions reordered
DISGUISED = """
def count_words(sentence):
    # count each word
    result = {}
    for w in sentence.split():
        result[w] = result.get(w, 0) + 1
    return result


def mean(xs):
    s = 0

    for x in xs:
        s += x   # running sum
    return s / len(xs)


def largest(items):
    m = items[0]
    for it in items[1:]:
        if it > m:
            m = it
    return m
"""

UNRELATED = """
import statistics
from collections import Counter


def average(numbers):
    return statistics.fmean(numbers) if numbers else 0.0


def largest(values):
    return max(values)


def count_words(text):
    return dict(Counter(text.split()))
"""


def workspace(
    student: str, files: Mapping[str, str], boilerplate: frozenset[int] = frozenset()
) -> Workspace:
    code = code_files([(path, text.encode()) for path, text in files.items()])
    prints = [fingerprints(c.normalized) for c in code]
    return fingerprinted(student, code, prints, boilerplate)


def by_pair(scores: list[PairScore]) -> dict[tuple[str, str], PairScore]:
    return {(s.left, s.right): s for s in scores}


def test_renamed_and_reordered_code_is_still_the_same_code() -> None:
    a = workspace("a", {"solution.py": SOLUTION})
    b = workspace("b", {"main.py": DISGUISED})  # another file name too
    score = score_pair(a, b)
    assert score.similarity > 0.8
    assert score.left_lines >= 15 and score.right_lines >= 15


def test_an_unrelated_solution_to_the_same_task_scores_low() -> None:
    a = workspace("a", {"solution.py": SOLUTION})
    c = workspace("c", {"solution.py": UNRELATED})
    assert score_pair(a, c).similarity < 0.15
    assert compare_all([a, c]) == []


def test_starter_code_never_matches() -> None:
    starter = "def read_numbers(path):\n" + "".join(
        f"    value_{n} = open(path).read().split()[{n}]\n" for n in range(12)
    )
    boilerplate = boilerplate_hashes({"starter/solution.py": starter})
    a = workspace("a", {"solution.py": starter + SOLUTION}, boilerplate)
    c = workspace("c", {"solution.py": starter + UNRELATED}, boilerplate)
    assert score_pair(a, c).similarity < 0.15
    plain_a = workspace("a", {"solution.py": starter + SOLUTION})
    plain_c = workspace("c", {"solution.py": starter + UNRELATED})
    assert score_pair(plain_a, plain_c).similarity > 0.3  # what the starter would add
    only_starter = workspace("s", {"solution.py": starter}, boilerplate)
    assert len(only_starter.hashes) == 0


def test_byte_identical_workspaces_come_first_even_without_code() -> None:
    empty = frozenset(boilerplate_hashes({"s.py": SOLUTION}))
    first = workspace("a", {"solution.py": SOLUTION}, empty)
    twin = workspace("b", {"solution.py": SOLUTION}, empty)
    copied = workspace("c", {"solution.py": DISGUISED})
    other = workspace("d", {"solution.py": DISGUISED.replace("result", "tally")})
    first = Workspace(**{**first.__dict__, "digest": "same"})
    twin = Workspace(**{**twin.__dict__, "digest": "same"})
    scores = compare_all([first, twin, copied, other])
    assert [(s.left, s.right, s.identical) for s in scores][:2] == [
        ("a", "b", True),
        ("c", "d", False),
    ]
    assert scores[0].similarity == 1.0


def test_common_code_is_left_out_of_every_pair() -> None:
    everyone = [workspace(f"s{n:02d}", {"solution.py": SOLUTION}) for n in range(12)]
    kept = without_common(everyone, common_limit(len(everyone)))
    assert all(len(w.hashes) == 0 for w in kept)
    assert candidate_pairs(kept) == {}


def test_candidate_pairs_count_shared_fingerprints() -> None:
    a = workspace("a", {"solution.py": SOLUTION})
    b = workspace("b", {"solution.py": DISGUISED})
    c = workspace("c", {"solution.py": UNRELATED})
    shared = candidate_pairs([a, b, c])
    assert shared[(0, 1)] >= 5
    assert shared[(0, 2)] <= 1


def test_fragments_pair_each_region_with_its_copy() -> None:
    a = workspace("a", {"solution.py": SOLUTION})
    b = workspace("b", {"main.py": DISGUISED})
    found = fragments(a, b)
    assert found
    lines_a = {line for f in found for line in range(f.left.first, f.left.last + 1)}
    # count_words is lines 16-20 of SOLUTION (0-based) and lines 1-6 of DISGUISED
    words = next(f for f in found if f.right.first <= 3)
    assert words.left.file == "solution.py" and words.right.file == "main.py"
    assert 15 <= words.left.first <= 17 and words.left.last >= 19
    assert {17, 18, 19} <= lines_a


def test_lines_are_mapped_back_through_classes_strings_and_comments() -> None:
    text = (
        "\n\n# leading comment\n"
        "class Shape:\n"
        '    """A shape."""\n'
        "    def area(self):  # no area\n"
        "        return 0\n"
    )
    code = normalize("shapes.py", text)
    assert code is not None
    for needle, line in (("classO", 3), ("defF", 5), ("return0", 6)):
        at = code.normalized.index(needle)
        assert code.line_of[at] == line, (needle, code.normalized)


def test_what_is_not_code_is_not_compared() -> None:
    assert language_of("solution.py") == "python"
    assert language_of("Main.java") == "java"
    assert language_of("notes.txt") is None
    assert code_files([("data.bin", b"\0\1\2"), ("notes.txt", b"hello")]) == []


@given(st.text(alphabet="abcV=()+:\n ", max_size=200))
def test_kgram_hashes_are_one_per_kgram_and_the_same_for_the_same_text(text: str) -> None:
    hashes = kgram_hashes(text, 5)
    assert len(hashes) == max(0, len(text) - 4)
    assert list(hashes) == list(kgram_hashes(text, 5))
    if len(text) >= 5:
        assert kgram_hashes(text[:5], 5)[0] == hashes[0]


def test_hashes_do_not_change_between_processes() -> None:
    """copydetect's own use Python's hash(): ours give the same report every run."""
    script = "from grader.winnowing import kgram_hashes; print(kgram_hashes('V=V+F(V)' * 5)[:3])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    }
    assert len(runs) == 1
