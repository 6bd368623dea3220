"""JUnit at 100k results: this tree's one-pass writer against the writer of a baseline revision;
with ``--portfolio 1000``, the portfolio page over 1,000 campaigns.

Run: ``python -m benchmarks.reports_scale [--results N] [--runs R] [--baseline REV]``. It gathers a
real campaign's report data from a store (the default lab, as the tests copy it), then widens it to
N results (20 cells; 90% pass, 5% fail, 2% error, 2% skip, 1% flaky, each with a little evidence),
pickles it, and renders JUnit from it in fresh processes, one for this tree's ``junit_xml`` and one
for ``lab/reports/junit.py`` as of ``--baseline`` (default ``main``; it needs the junit-xml
package), interleaved run for run, equal counts. Each process reports the render's wall time and
how far its peak RSS rose above what it held before rendering (the data itself is loaded first
and not counted).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lab.model import CellOutcomes, CellRecord, CellState, Result, Status

STATUSES = [Status.PASS] * 90 + [Status.FAIL] * 5 + [Status.ERROR] * 2 + [Status.SKIP] * 2 + [Status.FLAKY]


def synthetic_cells(campaign_id: str, results: int, cells: int = 20) -> tuple[CellRecord, ...]:
    """``results`` results spread over ``cells`` done cells, statuses in STATUSES' proportions."""
    per = results // cells
    return tuple(CellRecord(campaign_id, f"sbx-{c:02d}", "care-planner-smoke", CellState.DONE,
                            "2026-12-01T10:00:00+00:00", "2026-12-01T10:05:00+00:00",
                            tuple(synthetic_result(n, STATUSES[n % len(STATUSES)]) for n in range(per)))
                 for c in range(cells))


def synthetic_result(n: int, status: Status) -> Result:
    """The ``n``th result of a cell, with ``status`` and a little evidence (a flaky one's earlier attempt)."""
    evidence: dict[str, object] = {"path": f"/opt/app/file-{n}", "mode": "0644", "owner": "root",
                                   "exists": True, "stdout": f"line {n} of the check's output"}
    if status is Status.FLAKY:
        evidence["earlier_attempts"] = [{"status": "fail", "message": "connection refused"}]
    return Result(f"check-{n:05d}", status, f"file-{n} is as expected" if status is Status.PASS
                  else f"file-{n}: mode 0600, expected 0644", evidence, 3 + n % 7, 2 if status is Status.FLAKY else 1)


def report_data(results: int, scratch: Path) -> object:
    """A real campaign's ReportData from the default lab, widened to ``results`` results."""
    from lab.config.labfile import load_lab
    from lab.evidence.store import Store
    from lab.reports.data import gather
    from tests.support.labfiles import copy_default_lab

    config = load_lab(copy_default_lab(scratch / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    campaign = store.create_campaign(build, [("ts-sbx-01", "care-planner-smoke")], config.path)
    store.finish_cell(campaign.id, "ts-sbx-01", "care-planner-smoke", [Result("c", Status.PASS, "ok", {}, 1, 1)])
    data = gather(config, store, store.campaign(campaign.id))
    cells = synthetic_cells(campaign.id, results)
    return replace(data, cells=cells, outcomes=tuple(CellOutcomes.of(c) for c in cells))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def render_child(pickled: Path, module_path: Path) -> None:
    """In a fresh process: load the data, then render it with ``module_path``'s junit_xml."""
    data = pickle.loads(pickled.read_bytes())
    spec = importlib.util.spec_from_file_location("junit_under_test", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = rss_kib()
    started = time.perf_counter()
    text = module.junit_xml(data)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "peak_rise_mib": (peak - before) / 1024, "bytes": len(text.encode())}))


# --- the portfolio page ---------------------------------------------------------------------------

def portfolio_store(campaigns: int, scratch: Path) -> tuple[object, object]:
    """A store of the default lab with ``campaigns`` finished campaigns of 20 builds of its product,
    each of 3 sandboxes x 3 suites x 10 results (statuses in STATUSES' proportions)."""
    from lab.config.labfile import load_lab
    from lab.evidence import store as store_module
    from lab.evidence.store import Store
    from tests.support.labfiles import copy_default_lab

    config = load_lab(copy_default_lab(scratch / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    builds = [store.register_build("care-planner", f"2.{b}.0", f"{b:02d}" * 32, config.state_dir / "a.tgz")
              for b in range(20)]
    sandboxes, suites = ("ts-sbx-01", "ts-sbx-02", "ts-sbx-03"), ("care-planner-smoke", "portfolio-compat",
                                                                  "care-planner-hygiene")
    numbers = iter(range(campaigns))  # one id per campaign, nightly (the store's own ids are per second)
    store_module.new_campaign_id = lambda: f"2026{next(numbers):06d}-nightly"  # type: ignore[assignment]
    for n in range(campaigns):
        build = builds[n % len(builds)]
        campaign = store.create_campaign(build, [(s, u) for s in sandboxes for u in suites], config.path)
        for s in sandboxes:
            for u in suites:
                store.finish_cell(campaign.id, s, u, [
                    Result(f"check-{k}", STATUSES[(n + k * 7) % len(STATUSES)], f"check {k} on {s}",
                           {"stdout": f"line {k}"}, 5, 1) for k in range(10)])
        store.finish_campaign(campaign.id)
    return config, store


def portfolio_times(campaigns: int, runs: int) -> None:
    """Gather and render the portfolio page over ``campaigns`` campaigns, in this process, ``runs``
    times; against it, the HTML report of one of those campaigns (what a build page costs)."""
    from lab.reports import render
    from lab.reports.data import gather
    from lab.reports.portfolio import gather_portfolio, portfolio_html

    with tempfile.TemporaryDirectory(prefix="lab-portfolio-bench-") as scratch:
        config, store = portfolio_store(campaigns, Path(scratch))
        page, one = [], []
        for _ in range(runs):  # interleaved, equal counts
            started = time.process_time()
            text = portfolio_html(gather_portfolio(config, store))  # type: ignore[arg-type]
            page.append(time.process_time() - started)
            started = time.process_time()
            render(gather(config, store, store.campaigns()[-1]), "html")  # type: ignore[arg-type]
            one.append(time.process_time() - started)
    portfolio_s, report_s = statistics.median(page), statistics.median(one)
    print(f"portfolio page of {campaigns:,} campaigns (20 builds, {campaigns * 90:,} results), "
          f"{runs} runs, lab's own CPU time")
    print(f"  portfolio page: {portfolio_s:.3f} s median ({len(text.encode()) / 1024:.0f} KiB); one build's page: "
          f"{report_s:.3f} s; ratio {portfolio_s / report_s:.1f}x (target: well under 1 s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--portfolio", type=int, metavar="CAMPAIGNS",
                        help="time the portfolio page over this many campaigns instead (e.g. 1000)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        render_child(*args.child)
        return 0
    if args.portfolio:
        portfolio_times(args.portfolio, args.runs)
        return 0
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="lab-reports-bench-") as scratch:
        work = Path(scratch)
        pickled = work / "data.pickle"
        pickled.write_bytes(pickle.dumps(report_data(args.results, work)))
        contenders = {"this tree": here / "lab" / "reports" / "junit.py"}
        old = subprocess.run(["git", "show", f"{args.baseline}:lab/reports/junit.py"], cwd=here,
                             capture_output=True, check=False)
        if old.returncode == 0:
            (work / "junit_before.py").write_bytes(old.stdout)
            contenders[args.baseline] = work / "junit_before.py"
        else:
            print(f"baseline {args.baseline!r} not available: {old.stderr.decode().strip()}")
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, path in contenders.items():
                done = subprocess.run([sys.executable, "-m", "benchmarks.reports_scale", "--child", str(pickled),
                                       str(path)], cwd=here, capture_output=True, check=True)
                measured[name].append(json.loads(done.stdout.decode().splitlines()[-1]))
    print(f"JUnit of {args.results:,} results, {args.runs} runs each, interleaved, each in a fresh process")
    print(f"{'':16}{'median s':>10}{'peak RSS rise MiB':>19}{'output MiB':>12}")
    medians = {}
    for name, runs in measured.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rise = statistics.median(r["peak_rise_mib"] for r in runs)
        medians[name] = (seconds, rise)
        print(f"{name:16}{seconds:>10.2f}{rise:>19.0f}{runs[0]['bytes'] / 2**20:>12.1f}")
    if len(medians) == 2:
        (new_s, new_m), (old_s, old_m) = medians.values()
        print(f"this tree: {new_s / old_s:.2f}x the time and {new_m / old_m:.2f}x the memory of {args.baseline} "
              f"(target: at most 0.5x each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
