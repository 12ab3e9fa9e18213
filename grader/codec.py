"""Typed records <-> JSON text for SQLite, through pydantic's validators.

Records stay plain frozen dataclasses; pydantic only reads and writes them, so what
comes back from SQLite is checked against the same types that went in.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def to_json(value: object) -> str:
    """Deterministic JSON for a record (field order as declared)."""
    text: bytes = _adapter(type(value)).dump_json(value)
    return text.decode()


def from_json(kind: type[T], text: str) -> T:
    """The record of type ``kind`` that ``to_json`` wrote."""
    value: T = _adapter(kind).validate_json(text)
    return value
