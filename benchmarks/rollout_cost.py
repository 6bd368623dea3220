"""What a rollout costs per production host, before and after a change, measured in one run.

``python -m benchmarks.rollout_cost --before DIR [--hosts 24,96,384] [--runs 1] [--only after]``

``DIR`` is a checkout of the code to compare with; this checkout is "after". For each host count
N and each code, a fresh copy of that code's default lab gets N local production hosts (its own
agreement: waves of 1%, 10%, 50%, 100%, ``forks: 8``), provisioned with ``lab production up``
and build A registered and recorded as promoted into production (not measured). Then the rollout
of build A to all N hosts runs in a child process of the same interpreter with that code on
``PYTHONPATH`` (``RolloutRunner.start``, the window clock set to an open evening): its wall
time and the CPU-seconds of its whole process tree (``benchmarks/cpu.py``) are what is measured,
the child's own start (imports, loading the lab) included on both sides. Before and after
alternate for each N. Prints one table. ``--only after`` (or ``before``) measures one code alone,
for sizes where both do not fit in the time there is (then there is no ratio).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from benchmarks import cpu
from benchmarks.checkouts import BUILD, CLI, before_and_after, code_env, copy_lab, medians, print_table, python

ROLLOUT = r"""
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from lab.campaign.builds import registered_build
from lab.config.labfile import load_lab
from lab.config.rollout_plan import load_rollout_settings
from lab.decision.records import record_promotion
from lab.evidence.store import Store
from lab.model import Campaign, CampaignState
from lab.rollout.engine import RolloutRunner

config = load_lab(Path(sys.argv[1]))
store = Store(config.state_dir / "lab.sqlite3")
build = registered_build(config.build_spec(sys.argv[2]), store)
record_promotion(store, Campaign("bench", build.product, build.version, build.digest, CampaignState.FINISHED,
                                 "t", "t", (), (), "lab.yml"), "production", {})
runner = RolloutRunner(config, store, load_rollout_settings(config),
                       clock=lambda: datetime(2026, 12, 2, 19, tzinfo=UTC))  # a Wednesday evening: window open
record = runner.start(build)
print(json.dumps({"state": record.state.value}))
"""


def make_production_lab(code: Path, target: Path, hosts: int) -> Path:
    """A copy of ``code``'s default lab at ``target`` with ``hosts`` local production hosts."""
    return copy_lab(code, target, "production", [f"prod-ts-{i:03d}" for i in range(1, hosts + 1)])


def stop_production(code: Path, lab_yml: Path) -> None:
    """Stop the services the production hosts run and remove them."""
    python(code, lab_yml.parent, *CLI, "--lab", str(lab_yml), "production", "down")


def main() -> int:
    codes, counts, runs = before_and_after(__doc__, "hosts", "24,96,384", 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lab-rollout-cost-") as scratch:
        for count in counts:
            measured: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
            for run in range(runs):
                for name, code in codes.items():
                    lab_yml = make_production_lab(code, Path(scratch) / f"{name}-{count}-{run}", count)
                    cli = (*CLI, "--lab", str(lab_yml))
                    try:
                        for step in (("build", BUILD), ("production", "up")):
                            done = python(code, lab_yml.parent, *cli, *step)
                            if done.returncode != 0:
                                raise SystemExit(f"{name}: lab {' '.join(step)} failed: {done.stderr[-2000:]}")
                        rolled = cpu.run([sys.executable, "-c", ROLLOUT, str(lab_yml), BUILD],
                                         code_env(code), lab_yml.parent)
                        if rolled.returncode != 0:
                            raise SystemExit(f"{name}: the rollout failed: {rolled.stderr[-3000:]}")
                        state = json.loads(rolled.stdout.strip().splitlines()[-1])["state"]
                        if state != "complete":
                            raise SystemExit(f"{name}: the rollout ended {state}")
                    finally:
                        stop_production(code, lab_yml)
                    measured[name].append((rolled.wall, rolled.cpu))
                    print(f"{count:>4} hosts {name:<6} wall {rolled.wall:7.1f} s  cpu {rolled.cpu:7.1f} s  "
                          f"({rolled.cpu / count:.2f} CPU-s per host)", flush=True)
            rows.append((count, medians(measured)))
    print_table("production hosts", "host", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
