"""``benchmarks.orchestration`` runs at a small size and prints its table: 100 dry hosts, the
in-process executor and one dry celery worker, on SQLite and on a PostgreSQL cluster of its own.

What is asserted is what does not depend on the machine's speed: every configuration's rollout
completes (the benchmark itself checks each host deployed exactly once and every host healthy),
the shard and store-write counts the engine makes for 100 hosts in the default waves (1/9/40/50
hosts, shards of 8), and the halt: shard 1 of wave 3 fails, the wave halts as that shard's outcome
is recorded, so of the 3 shards after it only those already started run (each dry shard of a halt
run takes 1 s; the controller polls every 0.2 s), and no host of wave 4 is touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.celery import NEEDS_REDIS
from tests.support.postgres import HOW, bin_dir

pytestmark = [pytest.mark.integration, NEEDS_REDIS]
REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_small_and_prints_its_table() -> None:
    if bin_dir() is None:
        pytest.skip(f"the benchmark's PostgreSQL rows need PostgreSQL's server: {HOW}")
    done = subprocess.run([sys.executable, "-m", "benchmarks.orchestration", "--hosts", "100", "--workers", "1",
                           "--breach", "3:1"], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = re.findall(r"^(\w+) +(\S+) (\w+) +(pass|halt): (\w+) in [\d.]+ s, (\d+) shards, (\d+) writes.*?"
                      r"(?:, (\d+) shard\(s\) run after the breach)?$", done.stdout, re.MULTILINE)
    found = {(kind, workers, store, mode): (state, int(shards), int(writes), after)
             for kind, workers, store, mode, state, shards, writes, after in runs}
    passing = {key: value for key, value in found.items() if key[3] == "pass"}
    assert passing == {
        ("inprocess", "-", "sqlite", "pass"): ("complete", 15, 214, ""),
        ("inprocess", "-", "postgresql", "pass"): ("complete", 15, 214, ""),
        ("celery", "1", "sqlite", "pass"): ("complete", 15, 233, ""),  # + a dispatch row and its end per shard
        ("celery", "1", "postgresql", "pass"): ("complete", 15, 233, ""),
    }
    # halted at the breach: waves 1-2 (3 shards), wave 3's shards 0 and 1, and only those started before the
    # controller recorded shard 1's outcome (each dry shard takes 1 s in the halt runs), never all 3 left
    halts = {key[:3]: value for key, value in found.items() if key[3] == "halt"}
    assert sorted(halts) == sorted(key[:3] for key in passing)
    for state, shards, _, after in halts.values():
        assert state == "halted" and int(after) < 3 and shards == 5 + int(after)
    table = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [cell.strip() for cell in table[0][:3]] == ["executor", "workers", "store"]
    rows = {tuple(c.strip() for c in row[:3]): [c.strip() for c in row[3:]] for row in table[1:]}
    assert list(rows) == [("inprocess", "-", "sqlite"), ("inprocess", "-", "postgresql"),
                          ("celery", "1", "sqlite"), ("celery", "1", "postgresql")]
    for (kind, _, _), cells in rows.items():
        assert cells[5] == ("214" if kind == "inprocess" else "233")  # store writes
        assert re.fullmatch(r"[012] \(of 3\)", cells[-1])
        assert float(cells[0]) > 0 and float(cells[6]) > 0  # wall s, writes/s
    assert rows[("inprocess", "-", "sqlite")][1] == "1.00"  # the baseline's own ratio
