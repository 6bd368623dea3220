"""Store writes per second, SQLite against PostgreSQL, measured in one run.

``python -m benchmarks.store_throughput [--hosts 3200] [--rounds 3] [--appends 200] [--writers 1,2,4]``

Both stores are durable, with the settings lab uses. SQLite is a file in WAL mode with
``synchronous=FULL``. PostgreSQL is a throwaway cluster of Debian's postgresql on a unix socket
(``tests.support.postgres.running_cluster``), with the server's default ``fsync`` and
``synchronous_commit`` on. Both live on the same disk. Every figure comes from real ``Store``
calls (``lab.evidence``, ``lab.rollout.records``, ``lab.decision.records``); the hosts are dry.

(a) **The rollout's record path.** A promoted build is rolled out to ``--hosts`` hosts in the
repository's own waves (agreement.yml: 1%, 10%, 50%, 100%, planned by ``plan_waves``). The
store calls are those the rollout engine makes for a rollout that passes, in the same order,
reads included:
  - the promotion row, with its ``promotion`` entry;
  - ``RolloutStore.create``, with its ``rollout-start`` entry;
  - per wave:
    - the dispatch: the wave and all its hosts to ``deploying``, with a ``rollout-wave-start`` entry;
    - each host's deploy result;
    - the wave to ``verifying``;
    - each host's health: a ``HostHealth`` of the health suite's checks, all passed;
    - the wave done, with a ``rollout-wave-done`` entry;
  - the rollout complete, with a ``rollout-complete`` entry.
That is the in-process executor's path (the default). The Celery executor records the same
rows and adds its dispatch rows (``lab.executors.dispatches``): one transaction per wave that
plans its shards and one per shard when its outcome is recorded; they are not measured here.
A write is one committed ``Store.transaction`` (each is counted). SQLite and PostgreSQL take
turns, round by round, and each round gets a new store. Each round is checked: the rollout
complete, every host healthy, the audit chain intact.

(b) **Audit appends under the one-writer rule.** W processes (``--writers``) each append
``--appends`` entries, one transaction each, to one store at the same moment. On PostgreSQL every
write transaction first takes the writer's ``pg_advisory_xact_lock``; on SQLite it is
``BEGIN IMMEDIATE``. The rate is all entries over the time from the first start to the last end.
Afterwards the chain must verify with exactly W x ``--appends`` entries.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lab.ansible.playbook import HostOutcome, host_detail
from lab.config.labfile import load_lab
from lab.config.rollout_plan import RolloutSettings, find_section, load_rollout_settings, plan_waves
from lab.config.store_location import StoreLocation
from lab.decision.records import record_promotion
from lab.evidence.audit import Note, entries, verify
from lab.evidence.store import Store
from lab.model import Build, Campaign, CampaignState, Result, Status
from lab.rollout.audit import ended, started, wave_done, wave_started
from lab.rollout.health import HostHealth
from lab.rollout.records import HostState, RolloutRecord, RolloutState, RolloutStore, WaveState
from tests.support.postgres import Cluster, ClusterUnavailable, running_cluster

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Places:
    """Where each backend's new stores are made."""

    scratch: Path
    cluster: Cluster

    def new(self, backend: str, name: str) -> StoreLocation:
        """A location where no store is yet."""
        if backend == "sqlite":
            return StoreLocation(path=self.scratch / f"{name}.sqlite3")
        return StoreLocation(dsn=self.cluster.create_database())


class Counted:
    """``store`` with its write transactions counted."""

    def __init__(self, store: Store) -> None:
        self.writes = 0
        transaction = store.transaction

        @contextmanager
        def counted() -> Iterator[Any]:
            self.writes += 1
            with transaction() as db:
                yield db

        store.transaction = counted  # type: ignore[method-assign]


def repository_rollout(hosts: int) -> RolloutSettings:
    """The repository's rollout settings (agreement.yml) over ``hosts`` made-up production hosts."""
    config = load_lab(REPO / "lab.yml")
    settings = load_rollout_settings(config)
    names = tuple(f"prod-ts-{i:04d}" for i in range(1, hosts + 1))
    _, document = find_section(config)
    waves = plan_waves(list(document["rollout"]["waves"]), names, config, settings.pause_seconds)
    return replace(settings, hosts=names, waves=waves)


def health_of(host: str, settings: RolloutSettings, checks: tuple[str, ...]) -> HostHealth:
    """A host whose health suite passed, as ``check_hosts`` reports it."""
    return HostHealth(host, settings.health_suite, tuple(
        Result(check, Status.PASS, "ok", {"observed": "2.0.0"}, 12) for check in checks))


def wave_note(note: Callable[[RolloutRecord, int], Note], index: int) -> Callable[[RolloutRecord], list[Note]]:
    """The audit entry ``note`` of wave ``index``, as ``set_wave`` asks for it."""
    return lambda after: [note(after, index)]


def record_rollout(store: Store, settings: RolloutSettings, checks: tuple[str, ...]) -> tuple[int, float]:
    """Record a passing rollout as the engine does (see the module's docstring); its write
    transactions and seconds. SystemExit when what was stored is not that rollout."""
    counter = Counted(store)
    build = Build("care-planner", "2.0.0", Path("/srv/builds/care-planner-2.0.0.msi"), "ab" * 32, "t")
    campaign = Campaign("bench", build.product, build.version, build.digest, CampaignState.FINISHED, "t", "t", (), (),
                        "lab.yml")
    rollouts = RolloutStore(store)
    deployed = host_detail("deploy.yml", HostOutcome("host", True, False, (), 2, True))
    begun = time.perf_counter()
    record_promotion(store, campaign, settings.stage, {"verdict": "pass"})
    record = rollouts.create(build, settings.stage, settings.waves, {h: None for h in settings.hosts},
                             audit=lambda created: [started(created, settings)])
    for plan in settings.waves:
        wave = rollouts.get(record.id).wave(plan.index)
        rollouts.set_wave(record.id, wave.index, WaveState.DEPLOYING, f"deploying to {len(wave.hosts)} host(s)",
                          hosts=(HostState.DEPLOYING, plan.hosts), rollout=RolloutState.RUNNING,
                          audit=wave_note(wave_started, wave.index))
        rollouts.get(record.id)
        for host in plan.hosts:
            rollouts.set_host(record.id, host, HostState.DEPLOYED, deployed, deployed_digest=build.digest)
        rollouts.get(record.id)
        rollouts.set_wave(record.id, wave.index, WaveState.VERIFYING, f"deployed to {len(plan.hosts)} of "
                          f"{len(plan.hosts)}")
        for host in plan.hosts:
            health = health_of(host, settings, checks)
            rollouts.set_host(record.id, host, HostState.HEALTHY, health.detail(), health=health.summary())
        wave = rollouts.get(record.id).wave(plan.index)
        rollouts.set_wave(record.id, wave.index, WaveState.DONE,
                          f"{len(plan.hosts)} of {len(plan.hosts)} host(s) healthy; {plan.threshold()}",
                          audit=wave_note(wave_done, wave.index))
    rollouts.end(record.id, RolloutState.COMPLETE, "every wave done", len(settings.waves),
                 audit=lambda after: [ended(after)])
    seconds = time.perf_counter() - begun
    final = rollouts.get(record.id)
    healthy = sum(1 for w in final.waves for h in w.hosts if h.state is HostState.HEALTHY)
    chain = verify(store)
    expected_entries = 1 + 2 + 2 * len(settings.waves)  # the promotion's; the start and end; 2 per wave
    if final.state is not RolloutState.COMPLETE or healthy != len(settings.hosts) or not chain.ok \
            or chain.entries != expected_entries:
        raise SystemExit(f"{store.backend}: the recorded rollout is wrong: {final.state.value}, {healthy} of "
                         f"{len(settings.hosts)} healthy, audit {chain.entries} entries (expected {expected_entries}), "
                         f"{chain.problem or 'chain intact'}")
    return counter.writes, seconds


def append_entries(location: StoreLocation, writer: int, count: int, go: Any, times: Any) -> None:
    """One writer process: open the store, wait for ``go``, append ``count`` entries, report (start, end)."""
    store = Store(location)
    payload = {"writer": writer, "verdict": "pass", "clauses": [{"clause": "critical-suites", "outcome": "met"},
                                                                {"clause": "window", "outcome": "met"}]}
    go.wait()
    begun = time.monotonic()
    for n in range(count):
        with store.transaction() as db:
            Note("decision", f"bench writer {writer}", {**payload, "n": n}).append_to(db)
    times.put((begun, time.monotonic()))
    store.close()


def audit_rate(location: StoreLocation, writers: int, count: int) -> float:
    """Entries per second of ``writers`` processes appending ``count`` each at once; SystemExit
    unless the chain then holds exactly every entry."""
    Store(location).close()  # made (and migrated) before the writers start
    spawn = multiprocessing.get_context("spawn")
    go, times = spawn.Event(), spawn.Queue()
    processes = [spawn.Process(target=append_entries, args=(location, w, count, go, times)) for w in range(writers)]
    for process in processes:
        process.start()
    time.sleep(1.0 + 0.5 * writers)  # every writer has opened the store and waits
    go.set()
    spans = [times.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"{location.backend}: a writer process failed (exit {process.exitcode})")
    store = Store(location)
    chain, kept = verify(store), len(entries(store, "decision"))
    store.close()
    if not chain.ok or kept != writers * count:
        raise SystemExit(f"{location.backend}, {writers} writers: {kept} entries kept of {writers * count}; "
                         f"{chain.problem or 'chain intact'}")
    first: float = min(begun for begun, _ in spans)
    last: float = max(end for _, end in spans)
    return writers * count / (last - first)


def interleaved(rounds: int, measure: Callable[[str, int], float]) -> dict[str, list[float]]:
    """``measure(backend, round)`` for each round, SQLite and PostgreSQL in turn; the figures per backend."""
    found: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    for round_ in range(rounds):
        for backend in BACKENDS if round_ % 2 == 0 else reversed(BACKENDS):
            found[backend].append(measure(backend, round_))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3200, help="production hosts in the rollout (default 3200)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each measurement per backend (default 3)")
    parser.add_argument("--appends", type=int, default=200, help="audit entries per writer process (default 200)")
    parser.add_argument("--writers", default="1,2,4", help="writer process counts (default 1,2,4)")
    args = parser.parse_args()
    writer_counts = [int(w) for w in args.writers.split(",")]
    settings = repository_rollout(args.hosts)
    checks = tuple(check.id for check in load_lab(REPO / "lab.yml").suites[settings.health_suite].checks)
    try:
        with tempfile.TemporaryDirectory(prefix="lab-store-bench-", dir="/var/tmp") as scratch, \
                running_cluster(durable=True) as cluster:
            places = Places(Path(scratch), cluster)
            return report(places, settings, checks, args.rounds, writer_counts, args.appends)
    except ClusterUnavailable as exc:
        print(f"store_throughput: {exc}", file=sys.stderr)
        return 2


def report(places: Places, settings: RolloutSettings, checks: tuple[str, ...], rounds: int,
           writer_counts: list[int], appends: int) -> int:
    """Measure (a) and (b) and print their tables."""
    recorded: dict[str, list[tuple[int, float]]] = {backend: [] for backend in BACKENDS}

    def rollout_round(backend: str, round_: int) -> float:
        store = Store(places.new(backend, f"rollout-{round_}"))
        try:
            writes, seconds = record_rollout(store, settings, checks)
        finally:
            store.close()
        recorded[backend].append((writes, seconds))
        print(f"rollout of {len(settings.hosts)} hosts, {backend:<10} round {round_ + 1}: {writes} writes in "
              f"{seconds:.1f} s ({writes / seconds:.0f}/s)", flush=True)
        return writes / seconds

    rates = interleaved(rounds, rollout_round)
    sizes = "/".join(str(len(w.hosts)) for w in settings.waves)
    print(f"\n(a) record path of a {len(settings.hosts)}-host rollout (waves of {sizes}), median of {rounds}:\n")
    print("| store | writes per rollout | median s | writes/s | hosts recorded/s |")
    print("|---|--:|--:|--:|--:|")
    for backend in BACKENDS:
        writes = recorded[backend][0][0]
        seconds = statistics.median(s for _, s in recorded[backend])
        print(f"| {backend} | {writes} | {seconds:.1f} | {statistics.median(rates[backend]):.0f} | "
              f"{len(settings.hosts) / seconds:.0f} |")
    ratio = statistics.median(rates["postgresql"]) / statistics.median(rates["sqlite"])
    print(f"\nwrites/s, PostgreSQL / SQLite: {ratio:.2f}")

    print(f"\n(b) audit appends, {appends} per writer process, one transaction each:", flush=True)
    rows = []
    for writers in writer_counts:
        def audit_round(backend: str, round_: int, writers: int = writers) -> float:
            rate = audit_rate(places.new(backend, f"audit-{writers}-{round_}"), writers, appends)
            print(f"  {writers} writer(s), {backend:<10} round {round_ + 1}: {rate:.0f} entries/s", flush=True)
            return rate

        found = interleaved(rounds, audit_round)
        sqlite, postgresql = statistics.median(found["sqlite"]), statistics.median(found["postgresql"])
        rows.append(f"| {writers} | {sqlite:.0f} | {postgresql:.0f} | {postgresql / sqlite:.2f} |")
    print(f"\n(b) audit appends, {appends} per writer process, one transaction each, median of {rounds}:\n")
    print("| writer processes | SQLite entries/s | PostgreSQL entries/s | PostgreSQL / SQLite |")
    print("|--:|--:|--:|--:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
