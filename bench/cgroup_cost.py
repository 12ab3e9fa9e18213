"""What the per-stage cgroups cost: each sandbox kind with and without them, in one run.

First the cgroups' own cost, no sandbox: ``true`` run bare against ``true`` run in a
fresh stage group (made, joined by the shell, killed and removed). Then, for ``true``,
``python3 -c pass`` and the sample course's hw1 pytest run, the median wall time of
each namespaced sandbox kind that works here without cgroups (``cgroups.switched_off``,
as on a machine without them) and with them (the default), taken in turns, and the
ratio. On a busy machine the second table also shows the CPU weight a stage gets in its
cgroup (the engine's folder weighs as many processes as there are CPUs), not only the
set-up cost. Needs root and writable cgroups (else it says so and measures nothing).

    python bench/cgroup_cost.py            # 15 runs of each
    python bench/cgroup_cost.py --quick    # 3 runs of each
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sandbox_cost import COMMANDS, confined, medians_ms, prepared_cell
from grader.engine.sandbox import KINDS, probe_sandbox, sandbox_uid
from grader.engine.sandbox.cgroups import describe, missing, stage_group, switched_off
from grader.engine.spec import Limits


def without_cgroups(action: Callable[[], object]) -> Callable[[], object]:
    def go() -> object:
        with switched_off():
            return action()

    return go


def in_group() -> object:
    with stage_group("bubblewrap", Limits()) as group:
        assert group is not None
        return subprocess.run([*group.join_prefix(), "true"], check=True)


def bare_true() -> object:
    return subprocess.run(["true"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs of each instead of 15")
    runs = 3 if parser.parse_args().quick else 15
    kinds = [k for k in KINDS if k != "rlimits" and probe_sandbox(k) is None]
    if missing() or not kinds:
        print(f"cgroup cost: not measured ({describe(kinds[0] if kinds else 'rlimits')[1]})")
        return
    ms = medians_ms({"bare": bare_true, "group": in_group}, runs)
    extra = ms["group"] - ms["bare"]
    print(f"cgroup set-up, join and removal (median of {runs}): `true` {ms['bare']:.1f} ms "
          f"bare, {ms['group']:.1f} ms in a stage group (+{extra:.1f} ms)")  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="cgroup-cost-"))
    root.chmod(0o711)
    try:
        with ExitStack() as uids:
            cells = {k: prepared_cell(root, k, uids.enter_context(sandbox_uid())) for k in kinds}
            print(
                f"cgroup cost per stage (median of {runs}, taken in turns; ratio = with / without)"
            )
            header = "".join(f"{k + ' without':>20}{'with':>9}{'ratio':>7}" for k in kinds)
            print(f"{'command':<24}{header}")
            for name, command in COMMANDS.items():
                actions: dict[str, Callable[[], object]] = {}
                for kind in kinds:
                    action = confined(cells[kind], command)
                    actions[f"{kind} without"] = without_cgroups(action)
                    actions[f"{kind} with"] = action
                ms = medians_ms(actions, runs)
                row = f"{name:<24}"
                for kind in kinds:
                    off, on = ms[f"{kind} without"], ms[f"{kind} with"]
                    row += f"{off:>17.1f} ms{on:>7.1f} ms{on / off:>6.2f}"
                print(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
