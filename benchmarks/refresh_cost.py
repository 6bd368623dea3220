"""A build's reports refreshed after an approval, at 100k results: this tree against a baseline.

Run: ``python -m benchmarks.refresh_cost [--results N] [--runs R] [--baseline REV]``. It makes one
lab once, with this tree's code: the default lab (as the tests copy it) with two change-board
approvers' keys, ``care-planner@2.0.0`` registered and one finished campaign of N results over the
lab's 9 cells (3 sandboxes x 3 suites, each result with a little evidence; the mandatory suites'
results pass, one in 50 skipped; the advisory suite's in ``reports_scale``'s proportions: 90% pass,
5% fail, 2% error, 2% skip, 1% flaky), and the build promoted to pilot, as build A is in the demo.
Then, run for run, for this tree and for the whole ``lab`` package as of ``--baseline`` (default
``main``, extracted by ``git archive``), interleaved (the order turned every run), in a fresh copy of
that lab:

1. the campaign's reports are written as ``lab run`` writes them at its end (a fresh process, not timed);
2. kari's approval for production is recorded with ``lab.api.approve`` in a fresh process, which
   times the refresh of the build's reports that the approval ends with: wall and CPU seconds, and
   how far the process's peak RSS rose above what it held before the refresh (the peak is reset
   first, ``/proc/self/clear_refs``), and whether the JUnit file was written again;
3. ``lab approve ... --key lars`` runs as a whole command, spawn to exit (what an approver waits).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.local_stop import checkout
from benchmarks.reports_scale import STATUSES, synthetic_result
from lab.model import Result, Status, StepRecord
from tests.support.lab_fixtures import allowed_signers_text, make_key, move_store_paths

HERE = Path(__file__).resolve().parent.parent
BUILD = "care-planner@2.0.0"
# As `lab run` writes a campaign's reports at its end (lab.api.campaigns.finished); the same names in both codes.
PRIME = """
import sys
from pathlib import Path
from lab.config.labfile import load_lab
from lab.evidence.store import Store
from lab.reports import write_build_pages
from lab.reports.data import gather
config = load_lab(Path(sys.argv[1]))
store = Store(config.state_dir / "lab.sqlite3")
write_build_pages(config, store, gather(config, store, store.campaign("latest")))
"""
# `lab.api.approve`, its refresh of the build's reports timed (lab.api.decisions calls refresh_reports).
APPROVE = """
import json, sys, time
from pathlib import Path
from lab import api
from lab.api import decisions

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0

measured = {}
real = decisions.refresh_reports

def timed(*args, **kwargs):
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS from now on
    before = status("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    refreshed = real(*args, **kwargs)
    measured.update(seconds=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                    rise_mib=(status("VmHWM") - before) / 1024, problem=refreshed.problem,
                    paths=[str(p) for p in refreshed.paths])
    return refreshed

decisions.refresh_reports = timed
junit = lambda: [(p.stat().st_ino, p.stat().st_mtime_ns) for p in Path(sys.argv[4]).glob("*.junit.xml")]
was = junit()
with api.Lab(sys.argv[1]) as lab:
    api.approve(lab, sys.argv[2], "production", Path(sys.argv[3]))
measured["junit_rewritten"] = junit() != was
print(json.dumps(measured))
"""
CLI = "from lab.cli import main; main()"


def results(n: int, mandatory: bool) -> list[Result]:
    """``n`` results of one cell: a mandatory suite's pass (one in 50 skipped), an advisory suite's
    in STATUSES' proportions."""
    return [synthetic_result(k, (Status.SKIP if k % 50 == 49 else Status.PASS) if mandatory
                             else STATUSES[k % len(STATUSES)]) for k in range(n)]


def make_lab(root: Path, count: int) -> tuple[Path, dict[str, Path]]:
    """The benchmark's lab under ``root/lab`` (its store holding ``count`` results, the build in
    pilot) and the approvers' keys; the lab file's path and the keys."""
    from lab.campaign.runner import plan_cells
    from lab.config.labfile import load_lab
    from lab.decision.promotion import promote
    from lab.evidence.store import Store
    from lab.util.clock import current, now
    from tests.support.labfiles import copy_default_lab

    keys = {name: make_key(root / "keys", name) for name in ("kari", "lars")}
    lab_yml = copy_default_lab(root / "lab")
    (root / "lab" / "keys").mkdir(exist_ok=True)
    (root / "lab" / "keys" / "allowed_signers").write_text(allowed_signers_text(keys, ("kari", "lars")))
    config = load_lab(lab_yml)
    artifact = root / "lab" / "artifacts" / "care-planner-2.0.0.tar.gz"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"care-planner 2.0.0, as tested\n")
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", hashlib.sha256(artifact.read_bytes()).hexdigest(), artifact)
    cells = plan_cells(config, "care-planner")
    campaign = store.create_campaign(build, cells, config.path)
    for sandbox in sorted({s for s, _ in cells}):
        store.record_step(StepRecord(campaign.id, sandbox, "deploy", True, False, "ok", build.digest, now(), now()))
    for sandbox, suite in cells:
        store.start_cell(campaign.id, sandbox, suite)
        store.finish_cell(campaign.id, sandbox, suite, results(count // len(cells), config.suites[suite].mandatory))
    store.finish_campaign(campaign.id)
    outcome = promote(config, store, build, "pilot", current())
    assert outcome.recorded, outcome.verdict
    store.close()
    return lab_yml, keys


def python(code: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with ``code`` first on the path, in ``cwd`` (a lab copy, never a checkout)."""
    done = subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ, "PYTHONPATH": str(code), "CI": "1"},
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{code}: exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def one_run(code: Path, pristine: Path, target: Path, keys: dict[str, Path]) -> dict[str, float]:
    """In a fresh copy of the lab at ``target``: its reports written as a run writes them, then one
    approval with its refresh timed, then a second approval as a whole ``lab approve`` command."""
    shutil.copytree(pristine, target, symlinks=True)
    move_store_paths(target / ".lab" / "lab.sqlite3", pristine, target)
    lab_yml = str(target / "lab.yml")
    python(code, target, "-c", PRIME, lab_yml)
    done = python(code, target, "-c", APPROVE, lab_yml, BUILD, str(keys["kari"]), str(target / "reports"))
    measured: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    assert measured.get("problem") is None and measured.get("paths"), measured
    started = time.perf_counter()
    python(code, target, "-c", CLI, "--lab", lab_yml, "approve", BUILD, "--to", "production", "--key",
           str(keys["lars"]))
    measured["command_seconds"] = time.perf_counter() - started
    page = (target / "reports" / Path(str(measured["paths"][0])).name).read_text(encoding="utf-8")  # type: ignore[index]
    assert "lars.haugen@example.no" in page, "the page does not show the second approval"
    shutil.rmtree(target)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lab-refresh-bench-") as scratch:
        work = Path(scratch)
        lab_yml, keys = make_lab(work / "made", args.results)
        contenders = {"this tree": HERE}
        old = checkout(args.baseline, work / "baseline")
        if old is None:
            print(f"baseline {args.baseline!r} not available")
        else:
            contenders[args.baseline] = old
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        names = list(contenders)
        for run in range(args.runs):
            for name in names[run % len(names):] + names[:run % len(names)]:  # the order turned every run
                measured[name].append(one_run(contenders[name], lab_yml.parent, work / "run", keys))
    print(f"refresh of a build's reports after an approval, {args.results:,} results, {args.runs} runs each, "
          f"interleaved, each in fresh processes; load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    rows = (("refresh after an approval, wall s", "seconds", "{:.2f}"),
            ("refresh, CPU s", "cpu", "{:.2f}"),
            ("refresh, peak RSS rise MiB", "rise_mib", "{:.0f}"),
            ("`lab approve`, whole command, wall s", "command_seconds", "{:.2f}"))
    header = " | ".join(["median (range) of the runs", *contenders])
    ratio = len(contenders) == 2
    print(f"\n| {header} |{' ' + args.baseline + ' / this tree |' if ratio else ''}")
    print("|---|" + "--:|" * (len(contenders) + ratio))
    medians: dict[str, dict[str, float]] = {}
    for label, key, shown in rows:
        values = {name: statistics.median(float(r[key]) for r in runs) for name, runs in measured.items()}
        medians[key] = values
        cells = [f"{shown.format(values[name])} ({shown.format(min(float(r[key]) for r in runs))}-"
                 f"{shown.format(max(float(r[key]) for r in runs))})" for name, runs in measured.items()]
        if ratio:
            mine, theirs = values.values()
            cells.append(f"{theirs / mine:.1f}x" if mine else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    rewritten = {name: sum(bool(r["junit_rewritten"]) for r in runs) for name, runs in measured.items()}
    print("| JUnit file written again by the refresh | "
          + " | ".join(f"{n} of {len(measured[name])}" for name, n in rewritten.items()) + (" | |" if ratio else " |"))
    mine = medians["seconds"]["this tree"]
    print(f"\ntarget: a build refresh after an approval at most 1 s at {args.results:,} results: "
          f"{'met' if mine <= 1.0 else 'missed'} ({mine:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
