"""Makes the checkout importable for tests run without an install, and keeps tests from
writing into it: hypothesis keeps no example database and its other files go to a temp
folder (pytest's cache is off in pyproject.toml)."""

import tempfile

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="grader-tests-hypothesis-"))
settings.register_profile("grader", database=None)
settings.load_profile("grader")
