"""Run one submission's five stages in the sandbox and decide its result.

``run_submission`` turns a ``RunSpec`` into a ``RunOutcome`` (``spec.py``). It blocks
(the app calls it in a worker thread) and never raises for anything a submission does:
what the student's code does is data; what the engine fails at is status 20, with the
reason in ``debug_log``. How a result is decided is platform-notes.md, "How the local
engine decides a result"; ``decide`` is that policy as a pure function.

The runner builds, on the submission's own capped tmpfs (``tmpfs.cell_area``: a root
engine confining with bubblewrap or unshare; gone when the run ends) or else under
``work_dir``::

    home/              the submission's home; home/workspace is the workspace
    runtime/           unit-tests XML, tests report and scenario result (the stage writes)
    toolkit/           se_utils_cli and the evaluate.py it runs
    etc/, etc-student/ passwd and group for the sandbox (harness, student)

and ``work_dir/streams/``: stage outputs, debug_log, tests_report (the app serves these).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from grader.api.models import StatusCode
from grader.engine import evaluate
from grader.engine.runner.verdict import (
    Evaluation,
    Verdict,
    decide,
    engine_failure,
    evaluation_from,
    skips,
    validate_result,
)
from grader.engine.runner.workspace import (
    FINAL_REPORT,
    RESULT,
    UNIT_REPORT,
    clear_results,
    normalize_read_only,
    prepare_cell,
    read_capped,
    restore_pins,
)
from grader.engine.sandbox import (
    Broker,
    Cell,
    SandboxInfo,
    StageExit,
    cell_area,
    detect_sandbox,
    run_stage,
    sandbox_uid,
    stage_env,
)
from grader.engine.sandbox.layout import MB
from grader.engine.spec import (
    PRIVATE_FOLDER,
    STAGE_ORDER,
    STUDENT_STAGES,
    Cancel,
    RunOutcome,
    RunSpec,
    StageOutcome,
    StageSpec,
    Turn,
    TurnAbortedError,
)
from grader.errors import SandboxError

__all__ = ["Evaluation", "Verdict", "decide", "engine_failure", "run_submission"]

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 8_000_000  # the validated tests report the runner accepts
MAX_RESULT_BYTES = 64_000
MAX_DROPPED_SHOWN = 20  # dropped read-only files listed one by one in debug_log
BUILT_IN_EVALUATE = "se_utils_cli evaluate"  # a test stage of exactly this runs in-engine


def run_submission(
    spec: RunSpec,
    *,
    cancel: Cancel | None = None,
    sandbox: SandboxInfo | None = None,
    turn: Turn | None = None,
) -> RunOutcome:
    """Run the submission's stages confined; blocks; never raises (engine faults -> 20),
    except ``TurnAbortedError`` when the engine stopped before ``turn`` came: nothing ran.

    ``sandbox`` picks the kind of confinement (tests pass one); default: the strongest
    this machine offers (``detect_sandbox``). ``turn`` (the engine's): everything up to
    the first stage's command is made before it is taken; it is given back after the last
    stage, before the folders are taken down. Without one the stages run at once.
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
            return _final(spec, debug, Verdict(StatusCode.PROJECT_ERROR), ())
        # Two identities: the harness's (tests, report) and the student's (build, programs)
        with (
            sandbox_uid() as uid,
            sandbox_uid() as student_uid,
            cell_area(spec.work_dir, info.kind, uid, spec.limits) as (area, capped),
        ):
            if not capped and info.kind != "rlimits" and uid is not None:
                debug.note(
                    f"disk: the submission's folders are on the host disk ({spec.limits.disk_mb}"
                    " MB is more than this machine's memory should hold): the disk limit is"
                    " measured every 50 ms, not enforced by the kernel"
                )
            submission = _Submission(spec, info, (uid, student_uid), debug, cancel, area, capped)
            return submission.run(turn)
    except TurnAbortedError:
        raise
    except (OSError, SandboxError) as exc:
        debug.note(f"internal error: {exc}")
    except Exception as exc:  # a runner bug must not leave a submission hanging: log it, 20
        log.exception("runner failed on submission %s", spec.submission_id)
        debug.note(f"internal error: {type(exc).__name__}: {exc}")
    return _final(spec, debug, Verdict(StatusCode.INTERNAL_ERROR), ())


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

    def note(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")


class _Submission:
    """One run: lay out the folders, run the stages in order, read what they left, decide."""

    def __init__(
        self,
        spec: RunSpec,
        info: SandboxInfo,
        uids: tuple[int | None, int | None],
        debug: _DebugLog,
        cancel: Cancel | None,
        area: Path,
        capped: bool,
    ) -> None:
        self.spec, self.debug, self.cancel = spec, debug, cancel
        work = area  # the submission's own folders; streams stay in work_dir (served later)
        private = _private_paths(spec)
        pinned, refused = normalize_read_only((*spec.read_only, *private))
        for raw in refused:
            debug.note(f"read-only path {raw!r} ignored: not a path inside the workspace")
        self.cell = Cell(
            kind=info.kind,
            home=work / "home",
            runtime=work / "runtime",
            # earlier stages' outputs as the harness reads them: on a capped area, a copy
            # made before each stage (a bind from work_dir would name the engine's folders)
            streams=work / "streams" if capped else spec.work_dir / "streams",
            toolkit=work / "toolkit",
            etc=work / "etc",
            uid=uids[0],
            limits=spec.limits,
            read_only=pinned,
            # the Python the engine runs in (exact prefixes, never their parents)
            readable=(*dict.fromkeys([sys.prefix, sys.base_prefix]), *spec.limits.read_only_paths),
            network=spec.network,
            private=normalize_read_only(private)[0],
            environment=spec.environment,
            capped=capped,
        )
        self.student = replace(
            self.cell, role="student", uid=uids[1], etc=work / "etc-student", broker=None
        )
        self.streams = spec.work_dir / "streams"  # where the engine writes what it serves
        self.outcomes: list[StageOutcome] = []
        self.exits: dict[str, StageExit] = {}
        self.seen: tuple[object, ...] = ()  # the result files as the last reading found them
        self.turn: Turn | None = None  # until the first stage takes it
        self.held: Turn | None = None  # until the stages are over

    def run(self, turn: Turn | None = None) -> RunOutcome:
        self.turn = self.held = turn
        try:
            return self._run()
        finally:
            self._give_back()  # the stages are over (or never began)

    def _give_back(self) -> None:
        if self.held is not None:
            self.held.give_back()
            self.held = None

    def _run(self) -> RunOutcome:
        pinned, dropped = prepare_cell(self.spec, self.cell, self.student)
        for path in dropped[:MAX_DROPPED_SHOWN]:
            self.debug.note(f"workspace: submitted file {path} dropped: it is at a read-only path")
        if len(dropped) > MAX_DROPPED_SHOWN:
            more = len(dropped) - MAX_DROPPED_SHOWN
            self.debug.note(f"workspace: {more} more submitted files at read-only paths dropped")
        self.cell = replace(self.cell, read_only=pinned)
        self.student = replace(self.student, read_only=pinned)
        lifetime = sum(stage.timeout for stage in self.spec.stages if stage.command) + 10
        env = {"SE_PATH_WORKSPACE": self.student.inside("workspace")}
        broker = Broker(
            self.student, deadline=time.monotonic() + lifetime, env=env, group=self.cell.uid
        )
        try:
            with broker:
                self.cell = replace(self.cell, broker=broker.folder)
                verdict, outcomes, exits = self._stages()
        finally:
            self._give_back()  # every stage and student process is over: the slot is free
            self._note_broker(broker)
        return _final(self.spec, self.debug, verdict, outcomes, exits)

    def _note_broker(self, broker: Broker) -> None:
        tally = broker.tally
        if tally.started or tally.refused or tally.errors:
            line = f"harness: {tally.started} student processes started"
            if tally.killed_at_limit:
                line += f", {tally.killed_at_limit} killed at their time limit"
            if tally.over_memory:
                line += f", {tally.over_memory} killed over the memory limit"
            if tally.refused:
                line += f", {tally.refused} requests refused"
            self.debug.note(line)
        for error in tally.errors[:MAX_DROPPED_SHOWN]:
            self.debug.note(f"warning: harness: a student process could not be started: {error}")

    def _stages(
        self,
    ) -> tuple[Verdict, tuple[StageOutcome, ...], dict[str, StageExit] | None]:
        """Run the stages in order; the verdict, the stages' outcomes and exits."""
        failure: Verdict | None = None
        evaluation: Evaluation | None = None
        cleared = False
        for stage in self.spec.stages:
            if stage.command is None or stage.skip or skips(stage.name, failure):
                self.outcomes.append(StageOutcome(stage.name, skipped=True))
                continue
            if stage.name in ("test", "post") and not cleared:
                clear_results(self.cell.runtime)  # what earlier stages left there is ignored
                cleared = True
            hold, self.turn = (self.turn.take if self.turn else None), None  # the first only
            exit = self._run_stage(stage, hold)
            if exit.cancelled:
                self.debug.note(f"stage {stage.name}: cancelled (the engine is shutting down)")
                return Verdict(StatusCode.INTERNAL_ERROR), self._all(stage), None
            failure = failure or engine_failure(stage.name, exit)
            if stage.name in ("test", "post"):
                evaluation = self._read_evaluation(stage.name) or evaluation
        verdict = decide(list(self.exits.items()), failure, evaluation)
        return verdict, tuple(self.outcomes), self.exits

    def _all(self, current: StageSpec) -> tuple[StageOutcome, ...]:
        rest = STAGE_ORDER[STAGE_ORDER.index(current.name) + 1 :]
        return (*self.outcomes, *(StageOutcome(name, skipped=True) for name in rest))

    def _run_stage(self, stage: StageSpec, hold: Callable[[], None] | None) -> StageExit:
        """Run one stage; ``hold`` (the turn's ``take``) is called right before its command."""
        assert stage.command is not None
        restore_pins(self.spec, self.cell)
        cell = self.student if stage.name in STUDENT_STAGES else self.cell
        if cell.streams != self.streams and cell.role == "harness":
            _copy_stage_outputs(self.streams, cell.streams)
        streams = self.streams
        here = stage.name == "test" and " ".join(stage.command.split()) == BUILT_IN_EVALUATE
        if here:  # our own command on the harness's files: no sandbox, no Python to start
            if hold is not None:
                hold()
            exit = self._evaluate_here(streams)
        else:
            exit = run_stage(
                cell,
                stage.command,
                timeout=stage.timeout,
                env=stage_env(cell, self._se_variables(stage.name)),
                stdout=streams / f"stage_{stage.name}_output",
                stderr=streams / f"stage_{stage.name}_error",
                cancel=self.cancel,
                hold=hold,
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
        self.debug.note(_describe_exit(stage, exit, self.spec) + (" (run by the engine)" * here))
        return exit

    def _evaluate_here(self, streams: Path) -> StageExit:
        """``se_utils_cli evaluate``, exactly what the stage would run, in this process: it
        reads the unit-tests XML the harness wrote (capped, no link followed, no DTD) and
        writes the report and the result as the harness's uid would have."""
        began = time.monotonic()
        runtime = self.cell.runtime
        try:
            code, said, complaint = evaluate.evaluate_files(
                str(runtime / UNIT_REPORT),
                str(runtime / FINAL_REPORT),
                str(runtime / RESULT),
                uid=self.cell.uid,
            )
        except OSError as exc:  # something the harness left at a report path
            code, said, complaint = 1, "", f"se_utils_cli evaluate: {exc.strerror}\n"
        (streams / "stage_test_output").write_text(said, encoding="utf-8")
        (streams / "stage_test_error").write_text(complaint, encoding="utf-8")
        return StageExit(code, None, time.monotonic() - began, 0)

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
        """What the stage left in the result's place, checked; unusable is 14, score 0.

        ``None`` also when the files are as the previous reading left them (a post stage
        that does not touch the test stage's result).
        """
        seen = tuple(_signature(self.cell.runtime / name) for name in (RESULT, FINAL_REPORT))
        if seen == self.seen:
            return None
        self.seen = seen
        try:
            raw_result = read_capped(self.cell.runtime / RESULT, MAX_RESULT_BYTES)
            result = validate_result(raw_result) if raw_result is not None else None
            raw_report = read_capped(self.cell.runtime / FINAL_REPORT, MAX_REPORT_BYTES)
            report = None
            if raw_report is not None:
                report = evaluate.validate_report(json.loads(raw_report))
        except (ValueError, RecursionError) as exc:
            self.debug.note(f"stage {stage}: unusable result: {exc}")
            return Evaluation(stage, StatusCode.FAIL, 0.0, str(exc))
        if report is not None:
            path = self.streams / "tests_report"
            path.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
        found = evaluation_from(stage, result, report)
        if found is not None and found.reason:
            self.debug.note(f"stage {stage}: {found.reason}")
        return found


def _private_paths(spec: RunSpec) -> tuple[str, ...]:
    """What student code never sees: the project's .sphere-engine folder (when it has one)
    and the scenario's ``limits.private_paths``."""
    own = (PRIVATE_FOLDER,) if (spec.project_dir / PRIVATE_FOLDER).is_dir() else ()
    return (*own, *spec.limits.private_paths)


def _signature(path: Path) -> object:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)


def _copy_stage_outputs(source: Path, target: Path) -> None:
    """The earlier stages' output files, as they are now, into ``target`` (root's, 0644)."""
    for path in source.glob("stage_*"):
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, target / path.name)


def _describe_exit(stage: StageSpec, exit: StageExit, spec: RunSpec) -> str:
    head = f"stage {stage.name}: "
    if exit.timed_out:
        return head + f"killed after its {stage.timeout:g} s timeout (time limit exceeded)"
    if exit.over == "memory":
        return head + (f"killed (signal 9): memory limit of {spec.limits.memory_mb} MB exceeded")
    if exit.over == "disk":
        used, files = exit.disk
        return head + (
            f"killed (signal 9): disk limit of {spec.limits.disk_mb} MB exceeded"
            f" ({used / MB:.1f} MB in {files} files and folders in use)"
        )
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
