"""POST bodies (multipart or urlencoded forms), read as they arrive, within caps.

``read_form`` takes the request's content type and its body as an async stream of
chunks. The body is counted as it arrives, so a client that lies about (or omits)
Content-Length is cut off at the cap. The file field (``source``) goes straight to a
file in a folder the caller owns; plain fields are kept in memory up to a small cap.
Every refusal is an ``InvalidRequestError`` (400 / 10) saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from grader.errors import InvalidRequestError

MAX_FIELDS = 32
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class FormLimits:
    """Caps on one request body."""

    max_body_bytes: int
    max_field_bytes: int
    max_fields: int = MAX_FIELDS


@dataclass(frozen=True)
class Form:
    """A parsed form: plain fields, and the file field's size if it was sent."""

    fields: Mapping[str, str] = field(default_factory=dict)
    file_size: int | None = None  # None: the file field was absent


def invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid request data: {message}")


def check_length(content_length: str | None, limits: FormLimits) -> None:
    """Refuse early when the client announces a body over the cap."""
    if content_length is None:
        return
    try:
        announced = int(content_length)
    except ValueError:
        raise invalid("Content-Length is not a number") from None
    if announced > limits.max_body_bytes:
        raise invalid(f"the request body is larger than {limits.max_body_bytes} bytes")


async def read_form(
    content_type: str | None,
    body: AsyncIterator[bytes],
    limits: FormLimits,
    *,
    file_field: str | None = None,
    file_path: Path | None = None,
) -> Form:
    """Parse a form body; the part named ``file_field`` is written to ``file_path``."""
    kind, params = parse_options_header(content_type or "")
    counted = _count(body, limits.max_body_bytes)
    if kind == MULTIPART.encode():
        boundary = params.get(b"boundary")
        if not boundary:
            raise invalid("multipart body without a boundary")
        reader = _MultipartReader(limits, file_field, file_path)
        try:
            return await reader.read(boundary, counted)
        finally:
            reader.close()
    if kind == URLENCODED.encode() or (kind == b"" and content_type is None):
        return await _read_urlencoded(counted, limits, file_field, file_path)
    raise invalid(
        f"unsupported content type {content_type[:100]!r}; send a form"
        if content_type
        else "no content type"
    )


async def _count(body: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > cap:
            raise invalid(f"the request body is larger than {cap} bytes")
        yield chunk


async def _read_urlencoded(
    body: AsyncIterator[bytes], limits: FormLimits, file_field: str | None, file_path: Path | None
) -> Form:
    raw = b"".join([chunk async for chunk in body])
    try:
        # latin-1 maps bytes 1:1, so a percent-encoded archive survives intact.
        pairs = parse_qsl(
            raw.decode("latin-1"),
            keep_blank_values=True,
            encoding="latin-1",
            max_num_fields=limits.max_fields,
            strict_parsing=False,
        )
    except ValueError as exc:
        raise invalid(str(exc)) from None
    fields: dict[str, str] = {}
    file_size = None
    for name, value in pairs:
        data = value.encode("latin-1")
        if name == file_field and file_path is not None:
            with file_path.open("wb") as out:
                out.write(data)
            file_size = len(data)
            continue
        fields[_text(name.encode("latin-1"), "a field name")] = _field(name, data, limits)
    return Form(fields, file_size)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{what} is not UTF-8 text") from None


def _field(name: str, data: bytes, limits: FormLimits) -> str:
    if len(data) > limits.max_field_bytes:
        raise invalid(f"field {name[:60]!r} is larger than {limits.max_field_bytes} bytes")
    return _text(data, f"field {name[:60]!r}")


class _MultipartReader:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, limits: FormLimits, file_field: str | None, file_path: Path | None):
        self.limits = limits
        self.file_field = file_field
        self.file_path = file_path
        self.fields: dict[str, str] = {}
        self.file_size: int | None = None
        self._out: IO[bytes] | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._data = bytearray()
        self._sink = "field"  # field | file | drop
        self._parts = 0

    async def read(self, boundary: bytes, body: AsyncIterator[bytes]) -> Form:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )
        try:
            async for chunk in body:
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise invalid(f"malformed multipart body ({exc})") from None
        if self._sink != "field" or self._name:
            raise invalid("the multipart body ends inside a part")
        return Form(self.fields, self.file_size)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.limits.max_fields:
            raise invalid(f"more than {self.limits.max_fields} form fields")
        self._disposition = b""
        self._name = ""
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        if len(self._header_name) > 1024:
            raise invalid("a multipart header is too long")

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > 8192:
            raise invalid("a multipart header is too long")

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise invalid("a multipart part has no name")
        self._name = _text(raw_name, "a field name")
        if self._name == self.file_field and self.file_path is not None:
            if self.file_size is not None:
                raise invalid(f"field {self._name!r} is sent twice")
            self._sink = "file"
            self._out = self.file_path.open("wb")
            self.file_size = 0
        elif b"filename" in options:
            self._sink = "drop"  # a file we did not ask for: counted, never stored
        else:
            self._sink = "field"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink == "file" and self._out is not None:
            self._out.write(data[start:end])
            self.file_size = (self.file_size or 0) + end - start
        elif self._sink == "field":
            self._data += data[start:end]
            if len(self._data) > self.limits.max_field_bytes:
                raise invalid(
                    f"field {self._name[:60]!r} is larger than {self.limits.max_field_bytes} bytes"
                )

    def _part_end(self) -> None:
        if self._sink == "file":
            self.close()
        elif self._sink == "field":
            self.fields[self._name] = _field(self._name, bytes(self._data), self.limits)
        self._sink = "field"
        self._name = ""
        self._data = bytearray()
