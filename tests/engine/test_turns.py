"""A submission's turn on a slot: prepared ahead, held before its first command, given back
when its stages end (spec.Turn), in the real sandbox and through the engine's scheduler."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from runner_kit import NAMESPACED, make_spec, needs_sandbox, sandbox_processes, stages, text

from grader.api.models import StatusCode
from grader.engine.app import create_app
from grader.engine.environments import Environments
from grader.engine.runner import run_submission
from grader.engine.sandbox import SandboxInfo
from grader.engine.scheduler import Scheduler, Slots
from grader.engine.spec import Cancel, RunOutcome, RunSpec, Turn, TurnAbortedError
from tests.engine.appkit import (
    BASE,
    engine_client,
    grading_config,
    make_config,
    make_project,
    q,
    submit,
    wait_final,
    wait_for,
)


class Referee:
    """The engine's side of one turn, driven by the test: it records when the runner asks
    for the turn and when it gives it back, and grants or aborts on the test's word."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.given_back = threading.Event()
        self.turn = Turn(1, lambda turn: self.asked.set(), lambda turn: self.given_back.set())


def run_in_thread(spec: RunSpec, kind: str, turn: Turn) -> dict[str, object]:
    """run_submission on a thread of its own (it blocks on the turn); its result or error."""
    result: dict[str, object] = {}

    def body() -> None:
        try:
            result["outcome"] = run_submission(
                spec,
                sandbox=SandboxInfo(kind, "test"),
                turn=turn,  # type: ignore[arg-type]
            )
        except TurnAbortedError as exc:
            result["aborted"] = exc

    worker = threading.Thread(target=body)
    worker.start()
    result["thread"] = worker
    return result


@needs_sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_the_first_command_waits_for_the_turn_and_the_slot_is_given_back_after_the_last(
    tmp_path: Path, kind: str
) -> None:
    spec = make_spec(
        tmp_path,
        upload={"solution.py": "x = 1\n"},
        stage_specs=stages(build="echo built > built.txt", run="cat built.txt; echo ran"),
    )
    referee = Referee()
    result = run_in_thread(spec, kind, referee.turn)
    assert referee.asked.wait(30), "the runner never asked for its turn"
    time.sleep(0.3)  # a command that did not wait would have run by now
    output = spec.work_dir / "streams" / "stage_build_output"
    assert not output.exists() or output.read_text() == ""
    assert not referee.given_back.is_set()
    referee.turn.grant()
    thread = result["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(60)
    outcome = result["outcome"]
    assert isinstance(outcome, RunOutcome)
    assert outcome.status == StatusCode.OK
    assert text(outcome, "stage_run_output") == "built\nran\n"
    assert referee.given_back.is_set()
    assert sandbox_processes() == []


@needs_sandbox
@pytest.mark.parametrize("kind", NAMESPACED)
def test_an_aborted_turn_runs_nothing_and_leaves_nothing(tmp_path: Path, kind: str) -> None:
    spec = make_spec(tmp_path, upload={"a.txt": "a"}, stage_specs=stages(run="echo ran; sleep 30"))
    referee = Referee()
    result = run_in_thread(spec, kind, referee.turn)
    assert referee.asked.wait(30)
    referee.turn.abort()
    thread = result["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(result.get("aborted"), TurnAbortedError)
    output = spec.work_dir / "streams" / "stage_run_output"
    assert not output.exists() or output.read_text() == ""
    assert not referee.given_back.is_set()  # never granted: nothing to give back
    assert sandbox_processes() == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(spec.work_dir) not in mounts  # the submission's capped area is unmounted


def test_a_submission_whose_stages_are_all_skipped_needs_no_turn(tmp_path: Path) -> None:
    info = SandboxInfo("rlimits", "test")
    alone = run_submission(make_spec(tmp_path, stage_specs=stages(), name="alone"), sandbox=info)
    referee = Referee()
    spec = make_spec(tmp_path, stage_specs=stages(), name="turn")
    outcome = run_submission(spec, sandbox=info, turn=referee.turn)
    assert outcome.status == alone.status
    assert not referee.asked.is_set()


class OrderRunner:
    """A fake runner recording the order runs began and how many ran at once."""

    def __init__(self) -> None:
        self.began: list[int] = []
        self.running = self.peak = 0
        self.lock = threading.Lock()
        self.go = threading.Event()

    def __call__(self, spec: RunSpec, cancel: Cancel) -> RunOutcome:
        with self.lock:
            self.began.append(spec.submission_id)
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.go.wait(30)
        with self.lock:
            self.running -= 1
        return RunOutcome(StatusCode.OK, (), {}, score=100.0)


def test_slots_go_to_submissions_in_the_order_they_came_and_bound_what_runs(
    tmp_path: Path,
) -> None:
    runner = OrderRunner()

    async def go() -> None:
        async with engine_client(make_config(tmp_path, slots=2), runner=runner) as client:
            ids = [(await submit(client)).json()["id"] for _ in range(7)]
            await wait_for(lambda: len(runner.began) == 2)
            await asyncio.sleep(0.2)  # the two prepared ahead wait at their turn
            statuses = [
                (await client.get(f"submissions/{sid}", params=q())).json()["result"]["status"]
                for sid in ids
            ]
            # two executing; the rest waiting, those prepared ahead included
            assert [s["code"] for s in statuses] == [3, 3, 0, 0, 0, 0, 0]
            runner.go.set()
            for sid in ids:
                assert (await wait_final(client, sid))["result"]["status"]["code"] == 15
            # granted oldest first: with two slots, the i-th to begin is among the i+2 oldest
            assert sorted(runner.began) == ids
            assert all(sid in ids[: i + 2] for i, sid in enumerate(runner.began))
            assert runner.peak == 2

    asyncio.run(go())


@pytest.mark.sandbox
def test_a_submission_whose_environment_is_being_built_lets_younger_ones_run(
    tmp_path: Path,
) -> None:
    # the build (real uv, from the package index) waits for a gate the test opens
    from uv import find_uv_bin

    gate = tmp_path / "gate"
    uv = tmp_path / "uv"
    uv.write_text(
        f'#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexec {find_uv_bin()} "$@"\n'
    )
    uv.chmod(0o755)
    config = make_config(tmp_path, slots=1)
    needs = make_project(config.projects_dir, "needs-six", grading_config())
    (needs / "requirements.txt").write_text("six\n")
    runner = OrderRunner()
    runner.go.set()

    async def go() -> None:
        app = create_app(config, runner=runner)
        async with app.router.lifespan_context(app):
            app.state.engine.environments = Environments(config.data_dir / "env", uv=str(uv))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE + "/") as client:
                slow = (await submit(client, project="needs-six")).json()["id"]
                quick = (await submit(client)).json()["id"]
                assert (await wait_final(client, quick))["result"]["status"]["code"] == 15
                body = (await client.get(f"submissions/{slow}", params=q())).json()
                assert body["result"]["status"]["code"] == 0  # still waiting for its build
                gate.touch()
                assert (await wait_final(client, slow, 300))["result"]["status"]["code"] == 15
        assert runner.began == [quick, slow]

    asyncio.run(go())


def test_a_slot_given_back_goes_to_the_next_turn_while_the_event_loop_is_busy() -> None:
    """Stages end together, and the engine's loop is busy with the requests that follow:
    the runner giving its slot back hands it to the next ready turn from its own thread.
    Only the store's status change (``on_grant``) waits for the loop."""
    first_may_end, second_runs = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()
    granted: list[tuple[int, bool]] = []  # (submission, on the loop's thread)

    async def go() -> bool:
        loop = asyncio.get_running_loop()

        def on_grant(submission_id: int) -> None:
            granted.append((submission_id, threading.get_ident() == loop_thread))

        async def job(submission_id: int) -> None:
            turn = scheduler.turn(submission_id)

            def runner() -> None:
                turn.take()
                (first_may_end.wait if submission_id == 1 else second_runs.set)()
                turn.give_back()

            await loop.run_in_executor(None, runner)

        scheduler = Scheduler(Slots(1), job, lookahead=1, on_grant=on_grant)
        scheduler.submit(1)
        scheduler.submit(2)
        await wait_for(lambda: granted == [(1, True)])
        first_may_end.set()
        handed_on = second_runs.wait(30)  # blocks the loop: only the runners' threads move
        await wait_for(lambda: len(granted) == 2)
        await scheduler.close(30)
        return handed_on

    assert asyncio.run(go())
    assert granted == [(1, True), (2, True)]  # the status changes ran on the loop
