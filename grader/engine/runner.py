"""Run one submission's five stages in the sandbox and decide its result.

``run_submission`` turns a ``RunSpec`` into a ``RunOutcome`` (``spec.py``). It blocks
(the app calls it in a worker thread) and never raises for anything a submission does:
what the student's code does is data; what the engine fails at is status 20, with the
reason in ``debug_log``. How a result is decided is platform-notes.md, "How the local
engine decides a result"; ``decide`` is that policy as a pure function.

Under ``work_dir`` the runner builds::

    home/              the submission's home; home/workspace is the workspace
    runtime/           unit-tests XML, tests report and scenario result (the stage writes)
    streams/           stage outputs, debug_log, tests_report (the app serves these)
    toolkit/           se_utils_cli and the evaluate.py it runs
    etc/               passwd and group for the sandbox
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.engine import evaluate
from grader.engine.sandbox import (
    INNER_UID,
    Cell,
    SandboxInfo,
    StageExit,
    detect_sandbox,
    run_stage,
    sandbox_uid,
    stage_env,
)
from grader.engine.spec import (
    BUILD_ERROR,
    FAIL,
    INTERNAL_ERROR,
    OK,
    PROJECT_ERROR,
    RUNTIME_ERROR,
    STAGE_ORDER,
    TIME_LIMIT,
    Cancel,
    RunOutcome,
    RunSpec,
    StageOutcome,
    StageSpec,
)
from grader.errors import SandboxError

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 8_000_000  # the validated tests report the runner accepts
MAX_RESULT_BYTES = 64_000
MAX_DROPPED_SHOWN = 20  # dropped read-only files listed one by one in debug_log
UNIT_REPORT = "unit_tests_report.xml"
FINAL_REPORT = "tests_report.json"
RESULT = "result.json"
LAUNCHER = '#!/bin/sh\nexec python3 -I -S "{toolkit}/evaluate.py" "$@"\n'


# Policy (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """A result the test or post stage set: a status code, a score, why (if it failed)."""

    stage: str
    status: int
    score: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The decided result: status, score, signal, and the stage that decided it (if one)."""

    status: int
    score: float | None = None
    signal: int | None = None
    stage: str | None = None


def engine_failure(name: str, exit: StageExit) -> Verdict | None:
    """What a stage's end decides by itself (13, 12 or 11), before any evaluation."""
    if exit.timed_out:
        return Verdict(TIME_LIMIT, stage=name)
    if exit.signal is not None:
        return Verdict(RUNTIME_ERROR, signal=exit.signal, stage=name)
    if name == "build" and exit.exit_code != 0:
        return Verdict(BUILD_ERROR, stage=name)
    return None


def skips(name: str, failure: Verdict | None) -> bool:
    """After a failure only post runs; a build error skips run and test (init never fails)."""
    return failure is not None and name != "post"


def decide(
    ran: Sequence[tuple[str, StageExit]], failure: Verdict | None, evaluation: Evaluation | None
) -> Verdict:
    """The submission's status from what ran, the first engine-seen failure and evaluation.

    A failure the engine saw (time limit, signal, build error) stands even if post later
    states a result: the student's program did fail. Otherwise the last explicit result
    wins; with none, 15 if every stage exited 0 (the run stage's exit code alone, failing
    tests, does not count), else 12.
    """
    if failure is not None:
        return failure
    if evaluation is not None:
        return Verdict(evaluation.status, evaluation.score, stage=evaluation.stage)
    failed = [name for name, exit in ran if name != "run" and exit.exit_code != 0]
    return Verdict(RUNTIME_ERROR if failed else OK, stage=failed[0] if failed else None)


def evaluation_from(
    stage: str, result: dict[str, Any] | None, report: list[dict[str, Any]] | None
) -> Evaluation | None:
    """The evaluation a test/post stage left: its explicit result, else its report's."""
    if result is not None:
        code = evaluate.STATUS_CODES[result["status"]]
        return Evaluation(stage, code, result.get("score"), result.get("reason"))
    if report is not None:
        summary = evaluate.summarize(report)
        return Evaluation(stage, evaluate.STATUS_CODES[summary["status"]], summary["score"])
    return None


def validate_result(data: bytes) -> dict[str, Any]:
    """The scenario result file as a checked dict; ``ValueError`` saying what is wrong."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the scenario result is not a JSON object")
    status = value.get("status")
    if status not in evaluate.STATUS_CODES:
        raise ValueError(f"the scenario result's status {status!r} is not one of BE|RE|TLE|FAIL|OK")
    score = value.get("score")
    if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
        raise ValueError("the scenario result's score is not a number")
    if score is not None and not (0 <= score < float("inf")):
        raise ValueError("the scenario result's score is not a finite number >= 0")
    reason = value.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("the scenario result's reason is not a string")
    return {
        "status": status,
        "score": None if score is None else float(score),
        "reason": None if reason is None else reason[:1000],
    }


# The driver (I/O) ---------------------------------------------------------------------------


def run_submission(
    spec: RunSpec, *, cancel: Cancel | None = None, sandbox: SandboxInfo | None = None
) -> RunOutcome:
    """Run the submission's stages confined; blocks; never raises (engine faults -> 20).

    ``sandbox`` picks the kind of confinement (tests pass one); default: the strongest
    this machine offers (``detect_sandbox``).
    """
    streams = spec.work_dir / "streams"
    debug = _DebugLog(streams / "debug_log")
    try:
        streams.mkdir(parents=True, exist_ok=True)
        info = sandbox or detect_sandbox()
        debug.note(f"sandbox: {info.kind} ({info.detail})")
        if info.warning:
            debug.note(f"sandbox warning: {info.warning}")
        problem = _project_problem(spec)
        if problem is not None:
            debug.note(f"project error: {problem}")
            return _final(spec, debug, Verdict(PROJECT_ERROR), ())
        with sandbox_uid() as uid:
            return _Submission(spec, info, uid, debug, cancel).run()
    except (OSError, SandboxError) as exc:
        debug.note(f"internal error: {exc}")
    except Exception as exc:  # a runner bug must not leave a submission hanging: log it, 20
        log.exception("runner failed on submission %s", spec.submission_id)
        debug.note(f"internal error: {type(exc).__name__}: {exc}")
    return _final(spec, debug, Verdict(INTERNAL_ERROR), ())


def _project_problem(spec: RunSpec) -> str | None:
    names = tuple(stage.name for stage in spec.stages)
    if names != STAGE_ORDER:
        return f"stages are {', '.join(names) or 'none'}; expected {', '.join(STAGE_ORDER)}"
    if not spec.project_dir.is_dir():
        return f"project {spec.project_id!r} has no folder"
    return None


class _DebugLog:
    """The debug_log stream: one line per fact, written as it happens (no host paths)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def note(self, line: str) -> None:
        self.lines.append(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")


class _Submission:
    """One run: lay out the folders, run the stages in order, read what they left, decide."""

    def __init__(
        self,
        spec: RunSpec,
        info: SandboxInfo,
        uid: int | None,
        debug: _DebugLog,
        cancel: Cancel | None,
    ) -> None:
        self.spec, self.debug, self.cancel, self.uid = spec, debug, cancel, uid
        work = spec.work_dir
        pinned = _normalize_read_only(spec.read_only, debug)
        self.cell = Cell(
            kind=info.kind,
            home=work / "home",
            runtime=work / "runtime",
            streams=work / "streams",
            toolkit=work / "toolkit",
            etc=work / "etc",
            uid=uid,
            limits=spec.limits,
            read_only=pinned,
            # the Python the engine runs in (exact prefixes, never their parents)
            readable=(*dict.fromkeys([sys.prefix, sys.base_prefix]), *spec.limits.read_only_paths),
            network=spec.network,
        )
        self.outcomes: list[StageOutcome] = []
        self.exits: dict[str, StageExit] = {}

    def run(self) -> RunOutcome:
        prepared = prepare_cell(self.spec, self.cell, self.debug)
        self.cell = replace(self.cell, read_only=prepared)
        failure: Verdict | None = None
        evaluation: Evaluation | None = None
        cleared = False
        for stage in self.spec.stages:
            if stage.command is None or stage.skip or skips(stage.name, failure):
                self.outcomes.append(StageOutcome(stage.name, skipped=True))
                continue
            if stage.name in ("test", "post") and not cleared:
                _clear_results(self.cell.runtime)  # what earlier stages left there is ignored
                cleared = True
            exit = self._run_stage(stage)
            if exit.cancelled:
                self.debug.note(f"stage {stage.name}: cancelled (the engine is shutting down)")
                return _final(self.spec, self.debug, Verdict(INTERNAL_ERROR), self._all(stage))
            failure = failure or engine_failure(stage.name, exit)
            if stage.name in ("test", "post"):
                evaluation = self._read_evaluation(stage.name) or evaluation
        verdict = decide(list(self.exits.items()), failure, evaluation)
        return _final(self.spec, self.debug, verdict, tuple(self.outcomes), self.exits)

    def _all(self, current: StageSpec) -> tuple[StageOutcome, ...]:
        rest = STAGE_ORDER[STAGE_ORDER.index(current.name) + 1 :]
        return (*self.outcomes, *(StageOutcome(name, skipped=True) for name in rest))

    def _run_stage(self, stage: StageSpec) -> StageExit:
        assert stage.command is not None
        restore_pins(self.spec, self.cell)
        env = stage_env(self.cell, self._se_variables(stage.name))
        streams = self.cell.streams
        exit = run_stage(
            self.cell,
            stage.command,
            timeout=stage.timeout,
            env=env,
            stdout=streams / f"stage_{stage.name}_output",
            stderr=streams / f"stage_{stage.name}_error",
            cancel=self.cancel,
        )
        self.exits[stage.name] = exit
        self.outcomes.append(
            StageOutcome(
                stage.name,
                skipped=False,
                time=round(exit.seconds, 3),
                exit_code=exit.exit_code,
                signal=exit.signal,
            )
        )
        self.debug.note(_describe_exit(stage, exit, self.spec))
        return exit

    def _se_variables(self, current: str) -> dict[str, str]:
        runtime, streams = self.cell.inside("runtime"), self.cell.inside("streams")
        variables = {
            "SE_PATH_WORKSPACE": self.cell.inside("workspace"),
            "SE_CURRENT_STAGE": current,
            "SE_PATH_UNIT_TESTS_REPORT": f"{runtime}/{UNIT_REPORT}",
            "SE_PATH_FINAL_TESTS_REPORT": f"{runtime}/{FINAL_REPORT}",
            "SE_PATH_SCENARIO_RESULT": f"{runtime}/{RESULT}",
        }
        for name in STAGE_ORDER:
            upper = name.upper()
            variables[f"SE_PATH_STAGE_{upper}_STDOUT"] = f"{streams}/stage_{name}_output"
            variables[f"SE_PATH_STAGE_{upper}_STDERR"] = f"{streams}/stage_{name}_error"
            done = self.exits.get(name)
            if done is not None:
                code, sig = done.exit_code, done.signal
                variables[f"SE_STAGE_{upper}_EXIT_CODE"] = "" if code is None else str(code)
                variables[f"SE_STAGE_{upper}_SIGNAL"] = "" if sig is None else str(sig)
        return variables

    def _read_evaluation(self, stage: str) -> Evaluation | None:
        """What the stage left in the result's place, checked; unusable is 14, score 0."""
        try:
            raw_result = read_capped(self.cell.runtime / RESULT, MAX_RESULT_BYTES)
            result = validate_result(raw_result) if raw_result is not None else None
            raw_report = read_capped(self.cell.runtime / FINAL_REPORT, MAX_REPORT_BYTES)
            report = None
            if raw_report is not None:
                report = evaluate.validate_report(json.loads(raw_report))
        except (ValueError, RecursionError) as exc:
            self.debug.note(f"stage {stage}: unusable result: {exc}")
            return Evaluation(stage, FAIL, 0.0, str(exc))
        if report is not None:
            path = self.cell.streams / "tests_report"
            path.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
        found = evaluation_from(stage, result, report)
        if found is not None and found.reason:
            self.debug.note(f"stage {stage}: {found.reason}")
        return found


def _describe_exit(stage: StageSpec, exit: StageExit, spec: RunSpec) -> str:
    head = f"stage {stage.name}: "
    if exit.timed_out:
        return head + f"killed after its {stage.timeout:g} s timeout (time limit exceeded)"
    if exit.over == "memory":
        return head + (f"killed (signal 9): memory limit of {spec.limits.memory_mb} MB exceeded")
    if exit.over == "disk":
        return head + f"killed (signal 9): disk limit of {spec.limits.disk_mb} MB exceeded"
    if exit.signal is not None:
        return head + f"killed by signal {exit.signal} after {exit.seconds:.2f} s"
    return head + f"exit code {exit.exit_code} after {exit.seconds:.2f} s"


def _final(
    spec: RunSpec,
    debug: _DebugLog,
    verdict: Verdict,
    outcomes: tuple[StageOutcome, ...],
    exits: dict[str, StageExit] | None = None,
) -> RunOutcome:
    exits = exits or {}
    if not outcomes:
        outcomes = tuple(StageOutcome(name, skipped=True) for name in STAGE_ORDER)
    marked = tuple(
        replace(outcome, status_changed_to=verdict.status)
        if outcome.name == verdict.stage
        else outcome
        for outcome in outcomes
    )
    debug.note(f"result: status {verdict.status}" + _score_text(verdict.score))
    streams = {"debug_log": debug.path}
    folder = spec.work_dir / "streams"
    for outcome in marked:
        if not outcome.skipped:
            for kind in ("output", "error"):
                path = folder / f"stage_{outcome.name}_{kind}"
                if path.exists():
                    streams[f"stage_{outcome.name}_{kind}"] = path
    if (folder / "tests_report").exists():
        streams["tests_report"] = folder / "tests_report"
    seconds = sum(exits[name].seconds for name in ("run", "test") if name in exits)
    return RunOutcome(
        status=verdict.status,
        stages=marked,
        streams=streams,
        score=verdict.score,
        time=round(seconds, 3),
        memory=max((exit.peak_kb for exit in exits.values()), default=0),
        signal=verdict.signal,
    )


def _score_text(score: float | None) -> str:
    return "" if score is None else f", score {score:g}"


# Files (I/O) --------------------------------------------------------------------------------


def read_capped(path: Path, cap: int) -> bytes | None:
    """A file the stage wrote, or ``None``; links, FIFOs, devices and oversize are errors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be opened: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{path.name} is more than {cap} bytes")
    return data


def _clear_results(runtime: Path) -> None:
    for name in (RESULT, FINAL_REPORT):
        _remove(runtime / name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def _normalize_read_only(paths: Sequence[str], debug: _DebugLog) -> tuple[str, ...]:
    kept = []
    for raw in paths:
        parts = [part for part in raw.strip().split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            debug.note(f"read-only path {raw!r} ignored: not a path inside the workspace")
            continue
        kept.append("/".join(parts))
    return tuple(dict.fromkeys(kept))


# The workspace (I/O) ------------------------------------------------------------------------


def prepare_cell(spec: RunSpec, cell: Cell, debug: _DebugLog) -> tuple[str, ...]:
    """Lay out the folders under work_dir; returns the read-only paths that exist (pinned).

    Workspace = the project's files (minus ``config.json``), then the submission overlaid;
    a submitted file at (or replacing a folder above) a read-only path is dropped.
    """
    for folder in (cell.workspace, cell.runtime, cell.toolkit, cell.etc, cell.streams):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        spec.project_dir,
        cell.workspace,
        symlinks=True,
        dirs_exist_ok=True,
        ignore=lambda folder, names: ["config.json"] if Path(folder) == spec.project_dir else [],
    )
    dropped = overlay(spec.upload_dir, cell.workspace, cell.read_only)
    for path in dropped[:MAX_DROPPED_SHOWN]:
        debug.note(f"workspace: submitted file {path} dropped: it is at a read-only path")
    if len(dropped) > MAX_DROPPED_SHOWN:
        debug.note(f"workspace: {len(dropped) - MAX_DROPPED_SHOWN} more read-only files dropped")
    pinned = tuple(p for p in cell.read_only if os.path.lexists(cell.workspace / p))
    _write_toolkit(cell)
    _write_identity(cell)
    if cell.kind == "rlimits":
        (cell.home / ".tmp").mkdir(exist_ok=True)
    _set_owners(cell, pinned)
    return pinned


def overlay(upload: Path, workspace: Path, read_only: Sequence[str]) -> list[str]:
    """Copy ``upload`` over ``workspace``; returns the dropped paths (read-only places)."""
    dropped: list[str] = []
    for top, dirs, files in os.walk(upload):
        here = Path(top).relative_to(upload)
        for name in sorted(dirs):
            relative = (here / name).as_posix()
            source = Path(top) / name
            if source.is_symlink():
                files.append(name)  # copied as a link below, never followed
            elif _blocked(relative, read_only, is_folder=True):
                dropped += [f"{relative}/{p}" for p in _files_under(source)] or [relative + "/"]
            else:
                _make_folder(workspace / relative)
                continue
            dirs.remove(name)
        for name in sorted(files):
            relative = (here / name).as_posix()
            if _blocked(relative, read_only, is_folder=False):
                dropped.append(relative)
                continue
            target = workspace / relative
            _remove(target)
            shutil.copy2(Path(top) / name, target, follow_symlinks=False)
    return sorted(dropped)


def _blocked(relative: str, read_only: Sequence[str], *, is_folder: bool) -> bool:
    """At or under a read-only path, or a non-folder where a folder above one must be."""
    for pinned in read_only:
        if relative == pinned or relative.startswith(pinned + "/"):
            return True
        if pinned.startswith(relative + "/") and not is_folder:
            return True
    return False


def _files_under(folder: Path) -> list[str]:
    return sorted(
        (Path(top) / name).relative_to(folder).as_posix()
        for top, _, names in os.walk(folder)
        for name in names
    )


def _make_folder(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def restore_pins(spec: RunSpec, cell: Cell) -> None:
    """Put every read-only path back exactly as the project has it, before each stage.

    The sandbox already mounts them read-only; this also undoes anything a stage did
    around them (a folder above swapped for a link) where ownership cannot stop it.
    """
    for pinned in cell.read_only:
        folder = cell.workspace
        for part in pinned.split("/")[:-1]:
            folder = folder / part
            if folder.is_symlink() or not folder.is_dir():
                _remove(folder)
                folder.mkdir()
            _own(folder, 0, 0o1777, cell)
        target = cell.workspace / pinned
        _remove(target)
        source = spec.project_dir / pinned
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
        for path in [target, *_walk(target)]:
            _own(path, 0, _read_only_mode(path), cell)


def _walk(root: Path) -> list[Path]:
    if root.is_symlink() or not root.is_dir():
        return []
    return [Path(top) / name for top, dirs, files in os.walk(root) for name in dirs + files]


def _read_only_mode(path: Path) -> int | None:
    if path.is_symlink():
        return None
    if path.is_dir() or path.stat().st_mode & 0o111:
        return 0o755
    return 0o644


def _own(path: Path, uid: int, mode: int | None, cell: Cell) -> None:
    """chown (when the engine is root) and chmod, never through a link."""
    if cell.uid is not None:
        os.lchown(path, uid, uid)
    if mode is not None and not path.is_symlink():
        path.chmod(mode)


def _set_owners(cell: Cell, pinned: Sequence[str]) -> None:
    """The stage's uid owns its files; root owns the read-only paths and folders above them.

    Folders above a read-only path (and home, workspace) are root's with the sticky bit:
    the stage may add files there but cannot rename or remove what root owns.
    """
    above = {cell.home, cell.workspace}
    for path in pinned:
        above.update((cell.workspace / path).parents)
    above = {folder for folder in above if folder == cell.home or cell.home in folder.parents}
    if cell.uid is not None:
        for item in _walk(cell.home):
            os.lchown(item, cell.uid, cell.uid)
        for folder in (cell.runtime, cell.home / ".tmp"):
            if folder.exists():
                os.lchown(folder, cell.uid, cell.uid)
    for folder in above:
        _own(folder, 0, 0o1777, cell)
    for path in pinned:
        target = cell.workspace / path
        for item in [target, *_walk(target)]:
            _own(item, 0, _read_only_mode(item), cell)
    if cell.kind == "rlimits" and cell.uid is not None:
        _open_path_for(cell)


def _open_path_for(cell: Cell) -> None:
    """Without namespaces the stage's uid walks the host path to its folders: allow it."""
    work = cell.home.parent
    work.chmod(0o711)
    for folder in work.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise SandboxError(
                f"the sandbox uid cannot reach the submission's folder: {folder} is not "
                "searchable by others (needed by the rlimits fallback)"
            )


def _write_toolkit(cell: Cell) -> None:
    script = cell.toolkit / "se_utils_cli"
    script.write_text(LAUNCHER.format(toolkit=cell.inside("toolkit")))
    script.chmod(0o755)
    shutil.copyfile(Path(evaluate.__file__), cell.toolkit / "evaluate.py")


def _write_identity(cell: Cell) -> None:
    uid = INNER_UID if cell.uid is None else cell.uid
    (cell.etc / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"user:x:{uid}:{uid}:user:{cell.inside('home')}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (cell.etc / "group").write_text(f"root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n")
