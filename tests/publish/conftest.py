"""The fake LMSs the publish suites run against, each served on loopback for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_canvas import FakeCanvas, serve_canvas
from tests.support.fake_moodle import FakeMoodle, serve_moodle
from tests.support.publish_kit import CANVAS_USERS, MOODLE_USERS


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    """A Canvas course with CANVAS_USERS, two to a page."""
    with serve_canvas(FakeCanvas([dict(u) for u in CANVAS_USERS], page_size=2)) as server:
        yield server


@pytest.fixture
def moodle() -> Iterator[FakeMoodle]:
    """A Moodle site with MOODLE_USERS."""
    with serve_moodle(FakeMoodle([dict(u) for u in MOODLE_USERS])) as server:
        yield server
