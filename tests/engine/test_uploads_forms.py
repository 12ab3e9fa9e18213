"""Request bodies read as they stream: round trips, caps and garbage."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.engine.forms import Form, FormLimits, check_length, read_form
from grader.errors import InvalidRequestError

LIMITS = FormLimits(max_body_bytes=100_000, max_field_bytes=2_000)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
field_names = st.text(st.sampled_from("abcdefgh_"), min_size=1, max_size=8).filter(
    lambda n: n != "source"
)
field_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\0"), max_size=50)


def multipart(boundary: str, fields: dict[str, str], source: bytes | None) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if source is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="source"; '
            'filename="s.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n'.encode()
            + source
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


async def chunks(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        if start >= len(body):
            return
        yield body[start : start + size]
        start += size
    if start < len(body):
        yield body[start:]


def parse(
    content_type: str | None,
    body: bytes,
    sizes: list[int],
    folder: Path,
    limits: FormLimits = LIMITS,
) -> Form:
    return asyncio.run(
        read_form(
            content_type,
            chunks(body, sizes),
            limits,
            file_field="source",
            file_path=folder / "source",
        )
    )


@SETTINGS
@given(
    boundary=st.text(st.sampled_from("abcXYZ0123-"), min_size=4, max_size=30),
    fields=st.dictionaries(field_names, field_values, max_size=5),
    source=st.one_of(st.none(), st.binary(max_size=3000)),
    sizes=st.lists(st.integers(1, 700), max_size=30),
)
def test_a_multipart_body_round_trips_however_it_is_chunked(
    tmp_path: Path, boundary: str, fields: dict[str, str], source: bytes | None, sizes: list[int]
) -> None:
    body = multipart(boundary, fields, source)
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        form = parse(f"multipart/form-data; boundary={boundary}", body, sizes, Path(scratch))
        assert dict(form.fields) == fields
        if source is None:
            assert form.file_size is None and not (Path(scratch) / "source").exists()
        else:
            assert form.file_size == len(source)
            assert (Path(scratch) / "source").read_bytes() == source


@SETTINGS
@given(
    body=st.binary(max_size=1500),
    sizes=st.lists(st.integers(1, 300), max_size=10),
    kind=st.sampled_from(
        ["multipart/form-data; boundary=xx", "application/x-www-form-urlencoded", None]
    ),
)
def test_garbage_bodies_are_parsed_or_refused_never_anything_else(
    tmp_path: Path, body: bytes, sizes: list[int], kind: str | None
) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        rejection = None
        try:
            parse(kind, body, sizes, Path(scratch))
        except InvalidRequestError as exc:
            rejection = exc
        assert rejection is None or rejection.error_code == 10
        assert {p.name for p in Path(scratch).iterdir()} <= {"source"}


def test_an_urlencoded_body_keeps_the_archive_bytes(tmp_path: Path) -> None:
    raw = bytes(range(256))
    body = urlencode({"project_id": "p", "source": raw, "scenario": "grade"}).encode()
    form = parse("application/x-www-form-urlencoded", body, [7] * 50, tmp_path)
    assert dict(form.fields) == {"project_id": "p", "scenario": "grade"}
    assert (tmp_path / "source").read_bytes() == raw and form.file_size == 256


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", b"", "without a boundary"),
        ("text/plain", b"x", "unsupported content type"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
            + b"v" * 3000
            + b"\r\n--b--\r\n",
            "field 'a' is larger than 2000 bytes",
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\xfe\r\n--b--\r\n',
            "not UTF-8",
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="source"\r\n\r\nx\r\n'
            b'--b\r\nContent-Disposition: form-data; name="source"\r\n\r\ny\r\n--b--\r\n',
            "sent twice",
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished',
            "ends inside a part",
        ),
        ("application/x-www-form-urlencoded", b"a=" + b"z" * 3000, "larger than 2000 bytes"),
        ("application/x-www-form-urlencoded", b"x" * 100_001, "larger than 100000 bytes"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(
    tmp_path: Path, content_type: str, body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse(content_type, body, [1000] * 200, tmp_path)
    assert reason in caught.value.api_message


def test_too_many_fields_are_refused(tmp_path: Path) -> None:
    body = multipart("b", {f"f{i}": "v" for i in range(40)}, None)
    with pytest.raises(InvalidRequestError, match="more than 32 form fields"):
        parse("multipart/form-data; boundary=b", body, [], tmp_path)


def test_an_announced_length_over_the_cap_is_refused_before_reading() -> None:
    check_length("100000", LIMITS)
    check_length(None, LIMITS)
    with pytest.raises(InvalidRequestError, match="larger than 100000 bytes"):
        check_length("100001", LIMITS)
    with pytest.raises(InvalidRequestError, match="not a number"):
        check_length("lots", LIMITS)
