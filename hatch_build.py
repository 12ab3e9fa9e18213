"""Wheel build hook: the grading harness is both ``grader/harness.py`` and ``grader_harness``.

The engine copies ``grader/harness.py`` into every sandbox, so the file must stay in the
package; stages run with the grader's own Python import it as the top-level module
``grader_harness``. hatch's ``force-include`` of a file that is already in the package
moves it rather than copying it, so the top-level copy is staged in a folder of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class HarnessAsTopLevelModule(BuildHookInterface):  # type: ignore[type-arg]
    """Stage a copy of grader/harness.py and force-include it as grader_harness.py."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        self._staging = Path(tempfile.mkdtemp(prefix="grader-wheel-"))
        staged = self._staging / "grader_harness.py"
        shutil.copyfile(Path(self.root) / "grader" / "harness.py", staged)
        build_data["force_include"][str(staged)] = "grader_harness.py"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        staging = getattr(self, "_staging", None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
