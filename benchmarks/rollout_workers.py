"""A rollout to real local production hosts through real ansible-runner, on 1 and 2 zone workers:
wall time, CPU-seconds and how they scale.

``sudo .venv/bin/python -m benchmarks.rollout_workers [--hosts 100] [--workers 1,2] [--rounds 1]``

``--workers`` are counts of ``lab worker --queue production`` processes (``0`` adds the in-process
executor as a reference row). For each count, a fresh copy of the default lab gets N local
production hosts (its agreement: waves of 1%, 10%, 50%, 100%, ``forks: 8``), the celery executor on
a loopback redis-server, the SQLite store; ``lab build`` and ``lab production up`` run first (not
measured). Then the workers start, each one task at a time as ``lab worker`` always runs, and the
rollout of build A runs in a child process (``RolloutRunner.start`` with the lab's executor, the
window clock set to an open evening): its wall time, and the CPU-seconds of a cgroup holding the
controller and every worker with all their children (Ansible, the health checks), from the
rollout's start to its end. redis-server's own CPU is not counted. Counts take turns each round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import cpu
from benchmarks.checkouts import AFTER, BUILD, CLI, code_env, python
from benchmarks.distributed import celery_and_store, open_window, production_lab, workers
from lab.campaign.builds import registered_build
from lab.config.labfile import load_lab
from lab.config.rollout_plan import load_rollout_settings
from lab.decision.records import record_promotion
from lab.evidence.store import Store
from lab.executors.select import opened
from lab.model import Campaign, CampaignState
from lab.rollout.engine import RolloutRunner
from lab.rollout.records import HostState
from tests.support.celery import redis_server


def controller(lab_yml: Path, executor: str) -> None:
    """The measured child: build A promoted, then rolled out with ``executor``; prints its state."""
    config = load_lab(lab_yml, executor=executor)
    store = Store(config.store)
    build = registered_build(config.build_spec(BUILD), store)
    record_promotion(store, Campaign("bench", build.product, build.version, build.digest, CampaignState.FINISHED,
                                     "t", "t", (), (), "lab.yml"), "production", {})
    with opened(config.executor, store) as chosen:
        record = RolloutRunner(config, store, load_rollout_settings(config), clock=open_window,
                               executor=chosen).start(build)
    healthy = sum(1 for w in record.waves for h in w.hosts if h.state is HostState.HEALTHY)
    print(json.dumps({"state": record.state.value, "healthy": healthy}))


def one(target: Path, hosts: int, broker: str, count: int) -> tuple[float, float, str]:
    """Wall seconds, CPU-seconds and the counting method of one rollout with ``count`` workers (0:
    in process)."""
    lab_yml = production_lab(target, hosts)
    celery_and_store(lab_yml, broker, None)
    cli = (*CLI, "--lab", str(lab_yml))
    try:
        for step in (("build", BUILD), ("production", "up")):
            started = time.perf_counter()
            done = python(AFTER, target, *cli, *step)
            if done.returncode != 0:
                raise SystemExit(f"lab {' '.join(step)} failed: {done.stderr[-2000:]}")
            print(f"  lab {' '.join(step)}: {time.perf_counter() - started:.0f} s (not measured)", flush=True)
        with cpu.Group() as group, workers(lab_yml, count, preexec=group.enter):
            before = group.used() or 0.0
            started = time.perf_counter()
            rolled = subprocess.run([sys.executable, "-m", "benchmarks.rollout_workers", "--controller", str(lab_yml),
                                     "celery" if count else "inprocess"], env=code_env(AFTER), cwd=AFTER,
                                    capture_output=True, text=True, check=False, preexec_fn=group.enter)
            wall = time.perf_counter() - started
            used = group.used()
        if rolled.returncode != 0:
            raise SystemExit(f"the rollout failed: {rolled.stderr[-3000:]}")
        outcome = json.loads(rolled.stdout.strip().splitlines()[-1])
        if outcome != {"state": "complete", "healthy": hosts}:
            raise SystemExit(f"the rollout ended {outcome}; expected complete with {hosts} healthy hosts")
    finally:
        python(AFTER, target, *cli, "production", "down")
    return wall, (used - before) if used is not None else float("nan"), group.method


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (0: in process)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--controller", nargs=2, metavar=("LAB_YML", "EXECUTOR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.controller:
        controller(Path(args.controller[0]), args.controller[1])
        return 0
    counts = [int(c) for c in args.workers.split(",")]
    measured: dict[int, list[tuple[float, float]]] = {c: [] for c in counts}
    method = ""
    with tempfile.TemporaryDirectory(prefix="lab-rollout-workers-") as scratch:
        with redis_server(Path(scratch)) as broker:
            for turn in range(args.rounds):
                for count in counts[turn % len(counts):] + counts[:turn % len(counts)]:
                    print(f"{args.hosts} hosts, {count or 'in-process'} worker(s), round {turn + 1}: load "
                          f"{os.getloadavg()[0]:.1f}", flush=True)
                    wall, used, method = one(Path(scratch) / f"{count}-{turn}", args.hosts, broker, count)
                    measured[count].append((wall, used))
                    print(f"  wall {wall:.1f} s, cpu {used:.1f} s ({used / args.hosts:.2f} CPU-s per host), load "
                          f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n{args.hosts} local production hosts, real ansible-runner, CPU by {method}, median of {args.rounds} "
          f"round(s), on {os.cpu_count()} cores\n")
    first = next(c for c in counts if c)
    wall1 = statistics.median(w for w, _ in measured[first])
    print(f"| executor | workers | wall s | CPU-s | CPU-s per host | hosts/min | wall vs {first} worker(s) |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for count in counts:
        wall = statistics.median(w for w, _ in measured[count])
        used = statistics.median(c for _, c in measured[count])
        print(f"| {'celery' if count else 'inprocess'} | {count or '-'} | {wall:.1f} | {used:.1f} | "
              f"{used / args.hosts:.2f} | {60 * args.hosts / wall:.0f} | {wall / wall1:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
