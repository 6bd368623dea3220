"""lab's own orchestration cost for a 3,200-host rollout: the engine, the executor and the store
with a dry host step, so nothing but lab's planning, dispatching and recording is measured.

``python -m benchmarks.orchestration [--hosts 3200] [--workers 1,2,4] [--stores sqlite,postgresql]
[--breach 2:10] [--rounds 1]``

Each run is a fresh copy of the default lab whose production group has N hosts of provider
``static`` (hosts outside the lab, as Trondheim's workstations are), the default agreement's waves
(1%/10%/50%/100%, shards of ``forks: 8``), build A registered and recorded as promoted (not
measured), and the real ``RolloutRunner.start`` of this checkout, in this process, timed to its
end. The one thing replaced is the host step, and only in this module: ``DryRunner`` (a subclass
of the engine's runner) answers its ``playbook`` (every host ok) and ``check_health`` (the
production-health suite's checks, each passed) at once, and the celery rows' zone workers are this
module's ``--dry-worker`` processes: the real ``lab.executors.worker`` (HMAC envelope, zone, halt
flag, done and claim keys in Redis) serving a shard handler that answers the same way. A user's
lab never reaches either: ``lab worker`` and ``lab rollout`` run the real steps.

Executors: ``inprocess`` (the baseline: today's threads) and ``celery`` with 1, 2 and 4 dry workers
(one task at a time each, as ``lab worker`` runs) on a loopback redis-server. Stores: SQLite (WAL,
``synchronous=FULL``) and a throwaway PostgreSQL cluster on a unix socket with the server's
defaults (fsync on): both durable, as lab runs them. Per run: wall seconds of the rollout; the
time spent planning each wave's shard tasks (dispatch rows committed, the artifact put into the
share) and publishing them; every store write transaction counted and timed.

Halt: a second run of each configuration whose agreement halts a wave on any failed host, the dry
step reporting every host of shard S of wave W (``--breach W:S``) unhealthy. Every dry shard that
runs is logged (wave, shard, hosts); the table gives how many shards of that wave still ran after
the breaching one, and checks that no host of a later wave was touched. In the halt runs each dry
shard's deploy takes ``--halt-shard-s`` (default 1 s), as a real shard takes seconds: the halt is
judged per shard outcome, so the shards run after the breach are those already started when the
controller recorded it (instant shards would let a worker finish a wave within one poll of the
controller's, 0.2 s, and say nothing about a real rollout). A passing run is checked
too: complete, every host healthy, each host deployed exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.checkouts import BUILD
from benchmarks.distributed import celery_and_store, open_window, production_lab, workers
from lab.ansible.playbook import HostOutcome, PlaybookOutcome
from lab.campaign.builds import build_and_register
from lab.config.executor import ExecutorSettings
from lab.config.labfile import LabConfig, load_lab
from lab.config.rollout_plan import load_rollout_settings
from lab.decision.records import record_promotion
from lab.evidence.store import Store
from lab.executors.base import ROLLBACK, InProcess, Outcome, Task
from lab.executors.celery import CeleryExecutor
from lab.executors.codec import result_to_json
from lab.executors.worker import serve
from lab.model import Campaign, CampaignState, Result, Status
from lab.rollout.endpoints import Endpoint
from lab.rollout.engine import RolloutRunner
from lab.rollout.health import HostHealth
from lab.rollout.records import HostState, RolloutRecord, RolloutState, WaveRecord
from lab.rollout.shards import SHARD
from tests.support.celery import redis_server
from tests.support.postgres import Cluster, ClusterUnavailable, running_cluster

DRY = "dry host step: no Ansible, no check run"
BREACHED = "dry host step: breach injected here"


def dry_results(check_ids: Sequence[str], failing: bool) -> list[Result]:
    """What the dry step answers for one host: every check passed (or, at the breach, failed)."""
    return [Result(check, Status.FAIL if failing else Status.PASS, BREACHED if failing else DRY, {}, 0)
            for check in check_ids]


def log_shard(log: Path, wave: int, shard: int, hosts: list[str]) -> None:
    """One line per dry shard run (appended whole: several worker processes share the file)."""
    line = json.dumps({"wave": wave, "shard": shard, "hosts": hosts}) + "\n"
    handle = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(handle, line.encode())
    finally:
        os.close(handle)


@dataclass(frozen=True)
class Control:
    """What a dry step needs to know: where to log its shards, and the shard to fail (wave, shard)."""

    log: Path
    breach: tuple[int, int] | None
    shard_s: float = 0.0  # how long a dry shard's deploy takes (halt runs: see --halt-shard-s)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"log": str(self.log), "breach": self.breach, "shard_s": self.shard_s}))

    @staticmethod
    def read(path: Path) -> Control:
        data = json.loads(path.read_text())
        breach = data["breach"]
        return Control(Path(data["log"]), (int(breach[0]), int(breach[1])) if breach else None,
                       float(data["shard_s"]))


def dry_shard(control_file: Path, task: Task) -> Outcome:
    """A ``rollout-shard`` task answered as ``lab.rollout.shards.run_shard`` answers it, without a host."""
    control = Control.read(control_file)  # read per task: one set of workers serves every run of a size
    payload = task.payload
    failing = control.breach == (payload["wave"], payload["shard"])
    log_shard(control.log, int(payload["wave"]), int(payload["shard"]), list(payload["deploy"]))
    time.sleep(control.shard_s)
    checks = [str(c["id"]) for c in payload["suite"]["checks"]]
    return {"deployed": {h: {"ok": True, "detail": DRY} for h in payload["deploy"]},
            "health": {h: [result_to_json(r) for r in dry_results(checks, failing)]
                       for h in [*payload["deploy"], *payload["check"]]},
            "suite": payload["suite"]["name"]}


def dry_rollback(task: Task) -> Outcome:
    """A ``rollout-rollback`` task answered as ``lab.rollout.shards.run_rollback`` answers it, without a host."""
    payload = task.payload
    checks = [str(c["id"]) for c in payload["suite"]["checks"]]
    return {"rolled_back": {h: {"ok": True, "detail": DRY} for h in payload["hosts"]},
            "health": {h: [result_to_json(r) for r in dry_results(checks, False)] for h in payload["check"]},
            "suite": payload["suite"]["name"]}


def dry_worker(lab_yml: Path, control_file: Path) -> None:
    """A zone worker of ``lab_yml`` (the real ``lab.executors.worker``) whose shards and rollbacks are dry."""
    config = load_lab(lab_yml)
    serve(config.executor, "production", {SHARD: lambda task: dry_shard(control_file, task), ROLLBACK: dry_rollback})


class DryRunner(RolloutRunner):
    """The engine with its two host steps answered at once (benchmark only, see the module docstring)."""

    def __init__(self, config: LabConfig, store: Store, control: Control, **kwargs: Any) -> None:
        super().__init__(config, store, load_rollout_settings(config), clock=open_window, **kwargs)
        self.control = control
        self.checks = [c.id for c in config.suites[self.settings.health_suite].checks]
        self.shard_of: Counter[int] = Counter()
        self.failing: set[str] = set()
        self.planning = 0.0
        self.entered: float | None = None

    def playbook(self, record: RolloutRecord, wave: WaveRecord, path: Any, step: str,
                 extravars: dict[str, Any]) -> PlaybookOutcome:
        hosts = [h.host for h in wave.hosts]
        if step == "deploy":
            shard = self.shard_of[wave.index]
            self.shard_of[wave.index] += 1
            log_shard(self.control.log, wave.index, shard, hosts)
            time.sleep(self.control.shard_s)
            if self.control.breach == (wave.index, shard):
                self.failing.update(hosts)
        return PlaybookOutcome(str(path), "successful", 0, {h: HostOutcome(h, True, False, (), 1, True) for h in hosts})

    def check_health(self, items: list[Endpoint], workers: int, each: Callable[[HostHealth], None]) -> list[HostHealth]:
        found = []
        for item in items:
            health = HostHealth(item.name, self.settings.health_suite,
                                tuple(dry_results(self.checks, item.name in self.failing)))
            each(health)
            found.append(health)
        return found

    def deploy(self, record: RolloutRecord, wave: WaveRecord, build: Any) -> None:
        """The engine's deploy; the time until the executor gets the tasks is planning."""
        started, self.entered = time.perf_counter(), None
        super().deploy(record, wave, build)
        self.planning += (self.entered or started) - started


class CountingStore(Store):
    """The store, with every write transaction counted and timed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0
        self.seconds = 0.0
        self.count = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        started = time.perf_counter()
        with super().transaction() as db:
            yield db
        with self.count:
            self.writes += 1
            self.seconds += time.perf_counter() - started


class TimedHere(InProcess):
    """The in-process executor, telling the runner when its work begins."""

    def __init__(self, runner: Callable[[], DryRunner | None]) -> None:
        self.runner = runner

    def run(self, tasks: Sequence[Task], here: Callable[[], None], each: Callable[[Task, Outcome], None]) -> None:
        found = self.runner()
        if found is not None:
            found.entered = time.perf_counter()
        here()


class TimedCelery(CeleryExecutor):
    """The celery executor, timing its publishing and telling the runner when its tasks are planned."""

    def __init__(self, settings: ExecutorSettings, store: Store, runner: Callable[[], DryRunner | None]) -> None:
        super().__init__(settings, store)
        self.runner = runner
        self.publishing = 0.0

    def run(self, tasks: Sequence[Task], here: Callable[[], None], each: Callable[[Task, Outcome], None]) -> None:
        found = self.runner()
        if found is not None:
            found.entered = time.perf_counter()
        super().run(tasks, here, each)

    def publish(self, task: Task) -> None:
        started = time.perf_counter()
        super().publish(task)
        self.publishing += time.perf_counter() - started


@dataclass
class Measured:
    """One rollout: its wall seconds, planning and publishing seconds, store writes and their
    seconds, shards run, and (a halt run) the shards of the breached wave run after the breach,
    of how many it had left."""

    wall: float
    planning: float
    publishing: float
    writes: int
    write_s: float
    shards: int
    after_breach: int = 0
    left: int = 0
    state: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def shards_run(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def rollout(target: Path, hosts: int, broker: str, cluster: Cluster | None, remote: bool, control_file: Path,
            breach: tuple[int, int] | None, shard_s: float = 0.0) -> Measured:
    """One rollout of build A to ``hosts`` dry hosts (see the module docstring), checked."""
    lab_yml = production_lab(target, hosts, provider="static")
    celery_and_store(lab_yml, broker, cluster)
    if breach is not None:  # this run's agreement: any failed host halts its wave
        agreement = target / "agreement.yml"
        agreement.write_text(re.sub(r"max_failure_rate: [0-9.]+", "max_failures: 0", agreement.read_text()))
    control = Control(target / "shards.jsonl", breach, shard_s if breach is not None else 0.0)
    control.write(control_file)
    config = load_lab(lab_yml)
    store = CountingStore(config.store)
    build, _ = build_and_register(config.build_spec(BUILD), store)
    record_promotion(store, Campaign("bench", build.product, build.version, build.digest, CampaignState.FINISHED,
                                     "t", "t", (), (), "lab.yml"), "production", {})
    holder: list[DryRunner] = []
    executor = (TimedCelery(config.executor, store, lambda: holder[0] if holder else None) if remote
                else TimedHere(lambda: holder[0] if holder else None))
    runner = DryRunner(config, store, control, executor=executor)
    holder.append(runner)
    store.writes, store.seconds = 0, 0.0
    started = time.perf_counter()
    try:
        record = runner.start(build)
    finally:
        executor.close()
    wall = time.perf_counter() - started
    writes, write_s = store.writes, store.seconds
    store.close()
    ran = shards_run(control.log)
    measured = Measured(wall, runner.planning, executor.publishing if isinstance(executor, TimedCelery) else 0.0,
                        writes, write_s, len(ran), state=record.state.value)
    deployed = Counter(h for shard in ran for h in shard["hosts"])
    if breach is None:
        healthy = sum(1 for w in record.waves for h in w.hosts if h.state is HostState.HEALTHY)
        if record.state is not RolloutState.COMPLETE or healthy != hosts or len(deployed) != hosts \
                or set(deployed.values()) != {1}:
            raise SystemExit(f"{target.name}: the rollout ended {record.state.value} with {healthy} of {hosts} "
                             f"hosts healthy and {len(deployed)} deployed ({max(deployed.values(), default=0)} "
                             "times at most); expected complete, each host once")
        return measured
    wave, shard = breach
    later = [s for s in ran if s["wave"] > wave]
    in_wave = sorted(s["shard"] for s in ran if s["wave"] == wave)
    if record.state is not RolloutState.HALTED or later or shard not in in_wave:
        raise SystemExit(f"{target.name}: the rollout ended {record.state.value}, {len(later)} shard(s) of later "
                         f"waves ran, breached shard run: {shard in in_wave}; expected halted, none, yes")
    measured.after_breach = sum(1 for s in in_wave if s > shard)
    planned = -(-len(record.wave(wave).hosts) // runner.settings.forks)  # the wave's shards (one zone)
    measured.left = planned - shard - 1
    return measured


def configurations(counts: list[int]) -> list[tuple[str, int]]:
    return [("inprocess", 0), *(("celery", count) for count in counts)]


def median_of(runs: list[Measured], name: str) -> float:
    return float(statistics.median(getattr(r, name) for r in runs))


def print_tables(hosts: int, passing: dict[tuple[str, int, str], list[Measured]],
                 halted: dict[tuple[str, int, str], list[Measured]], breach: tuple[int, int], shard_s: float) -> None:
    """The Markdown table: one row per executor, workers and store (medians of the rounds)."""
    baseline = {store: median_of(runs, "wall") for (kind, _, store), runs in passing.items() if kind == "inprocess"}
    print(f"\n{hosts} hosts, dry host step; halt: any failed host halts its wave, shard {breach[1]} of wave "
          f"{breach[0]} fails, each dry shard of the halt runs taking {shard_s:g} s\n")
    print("| executor | workers | store | wall s | wall / in-process | ms per shard | planning s | publishing s | "
          "store writes | writes/s | s in store writes | shards run after the breach (of those left in its wave) |")
    print("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for (kind, count, store), runs in passing.items():
        wall = median_of(runs, "wall")
        writes = median_of(runs, "writes")
        halt = halted.get((kind, count, store), [])
        after = f"{median_of(halt, 'after_breach'):.0f} (of {median_of(halt, 'left'):.0f})" if halt else "-"
        print(f"| {kind} | {count or '-'} | {store} | {wall:.1f} | {wall / baseline[store]:.2f} | "
              f"{1000 * wall / median_of(runs, 'shards'):.0f} | {median_of(runs, 'planning'):.1f} | "
              f"{median_of(runs, 'publishing'):.1f} | {writes:.0f} | {writes / wall:.0f} | "
              f"{median_of(runs, 'write_s'):.1f} | {after} |")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=3200)
    parser.add_argument("--workers", default="1,2,4", help="celery worker counts (comma-separated)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--breach", default="2:10", help="WAVE:SHARD whose hosts the halt run fails (0-based shard)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--halt-shard-s", type=float, default=1.0,
                        help="seconds a dry shard's deploy takes in the halt runs (real shards take seconds)")
    parser.add_argument("--dry-worker", nargs=2, type=Path, metavar=("LAB_YML", "CONTROL"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.dry_worker:
        dry_worker(*args.dry_worker)
        return 0
    counts = [int(c) for c in args.workers.split(",") if c]
    stores = [s for s in args.stores.split(",") if s]
    wave, shard = (int(part) for part in args.breach.split(":"))
    passing: dict[tuple[str, int, str], list[Measured]] = {}
    halted: dict[tuple[str, int, str], list[Measured]] = {}
    with tempfile.TemporaryDirectory(prefix="lab-orchestration-") as scratch, ExitStack() as stack:
        root = Path(scratch)
        broker = stack.enter_context(redis_server(root))
        cluster = None
        if "postgresql" in stores:
            try:
                cluster = stack.enter_context(running_cluster(durable=True))
            except ClusterUnavailable as exc:
                raise SystemExit(f"benchmarks.orchestration: {exc} (or give --stores sqlite)") from None
        worker_lab = production_lab(root / "worker-lab", 1, provider="static")
        celery_and_store(worker_lab, broker, None)
        control_file = root / "control.json"
        command = [sys.executable, "-m", "benchmarks.orchestration", "--dry-worker", str(worker_lab), str(control_file)]
        runs = 0
        for turn in range(args.rounds):
            order = configurations(counts)
            order = order[turn % len(order):] + order[:turn % len(order)]
            for kind, count in order:
                with workers(worker_lab, count, command):
                    for store in stores if turn % 2 == 0 else stores[::-1]:
                        for breach in (None, (wave, shard)):
                            runs += 1
                            measured = rollout(root / f"run-{runs}", args.hosts, broker,
                                               cluster if store == "postgresql" else None, kind == "celery",
                                               control_file, breach, args.halt_shard_s)
                            key = (kind, count, store)
                            (passing if breach is None else halted).setdefault(key, []).append(measured)
                            print(f"{kind:<9} {count or '-':>2} {store:<10} {'halt' if breach else 'pass'}: "
                                  f"{measured.state} in {measured.wall:.1f} s, {measured.shards} shards, "
                                  f"{measured.writes} writes, planning {measured.planning:.1f} s, publishing "
                                  f"{measured.publishing:.1f} s"
                                  + (f", {measured.after_breach} shard(s) run after the breach" if breach else ""),
                                  flush=True)
    ordered = {key: passing[key] for kind, count in configurations(counts) for store in stores
               if (key := (kind, count, store)) in passing}
    print_tables(args.hosts, ordered, halted, (wave, shard), args.halt_shard_s)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
