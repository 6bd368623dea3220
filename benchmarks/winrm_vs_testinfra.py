"""Benchmark: the lab's WinRM transport vs pytest-testinfra's ``winrm://`` backend, same checks, same hosts.

Four WinRM test endpoints (loopback, HTTP + NTLM with message encryption) stand in for four
sandboxes; each gets the same 50 checks (files present/absent, directories, contents, command
output; a few fail on purpose). The lab runs them as one suite per sandbox through its WinRM
transport (one shell per sandbox); testinfra runs each as a plain command with ``host.run(...)``,
as its winrm backend does for every check: a new pywinrm Protocol, shell and HTTP session per
command. Both walk the sandboxes one after the other, both in this process (timed the same way).

The lab is measured on two paths. A Windows host runs runner.ps1: ``lab_runner: powershell``, the
``-EncodedCommand`` bootstrap with runner.ps1 and the manifest on stdin. There is no PowerShell
here, so the endpoint's ``powershell.exe`` is the stand-in of ``tests/support/powershell_model.py``
(it checks the command line and answers as the bootstrap would, but runs no check): that path's
protocol counts are the real ones (shells, round trips, connections, logons, with runner.ps1's
larger stdin), its wall time is not a Windows figure. The checks themselves are judged by the
Python runner (``lab_runner: python``, the path of a WinRM host with a POSIX shell), whose
verdicts must equal testinfra's per check. Counted from the endpoints' own counters: WinRS shells
created, HTTP requests (round trips), TCP connections; runs are interleaved with equal counts
(``--runs`` each, the order rotated every run) and the wall time is the median, with the
median of the per-run ratios.

Run from the repository root::

    .venv/bin/python -m benchmarks.winrm_vs_testinfra [--runs 5] [--sandboxes 4] [--checks 50]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import testinfra  # noqa: E402

from lab.checks.delivery import run_runner  # noqa: E402
from lab.checks.manifest import compile_suite, parse_results  # noqa: E402
from lab.model import Check, Status, Suite  # noqa: E402
from lab.transports.winrm.transport import WinRMTransport  # noqa: E402
from tests.support.powershell_model import FACTS, powershell_stand_in  # noqa: E402
from tests.support.winrm_endpoint import Counters, WinRMEndpoint  # noqa: E402

USER, PASSWORD = "bench", "bench-pass-7d1e"  # URL-safe: testinfra takes it in a winrm:// URL


@dataclass(frozen=True)
class Spec:
    """One check, written once and run by both tools."""

    id: str
    kind: str  # present, absent, directory, contains, output
    path: str  # inside the sandbox root
    text: str = ""


def specs(count: int) -> list[Spec]:
    """``count`` checks cycling through five kinds; every tenth present-file check fails (no such file)."""
    kinds = ("present", "absent", "directory", "contains", "output")
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = f"/opt/bench/{kind}-{i:03d}"
        if kind == "present" and i % 10 == 0:
            name += ".missing"
        out.append(Spec(f"{kind}-{i:03d}", kind, name, f"build=1.2.{i}"))
    return out


def populate(root: Path, checks: list[Spec]) -> None:
    """The sandbox's files: what the checks look for (except the deliberately missing ones)."""
    for spec in checks:
        target = root / spec.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if spec.kind == "directory":
            target.mkdir(exist_ok=True)
        elif spec.kind in ("contains", "output") or (spec.kind == "present" and not spec.path.endswith(".missing")):
            target.write_text(f"{spec.text}\n")


def lab_suite(checks: list[Spec], root: Path) -> Suite:
    """The checks as one lab suite (paths relative to the sandbox root)."""
    entries = []
    for spec in checks:
        params: dict[str, Any] = {"path": spec.path}
        if spec.kind == "absent":
            params["exists"] = False
        elif spec.kind == "directory":
            params["kind"] = "directory"
        elif spec.kind == "contains":
            params["contains"] = spec.text
        elif spec.kind == "output":
            params = {"command": ["cat", f"{root}{spec.path}"], "stdout": f"^{re.escape(spec.text)}$"}
        entries.append(Check(spec.id, "command" if spec.kind == "output" else "file", params, 10, 0))
    return Suite("bench", Path("bench.yml"), True, ("any",), tuple(entries))


def testinfra_check(host: Any, spec: Spec, root: Path) -> bool:
    """The check as testinfra users write it for a host reached over winrm: one plain command."""
    path = f"{root}{spec.path}"
    if spec.kind == "present":
        return bool(host.run("test -f %s", path).rc == 0)
    if spec.kind == "absent":
        return bool(host.run("test ! -e %s", path).rc == 0)
    if spec.kind == "directory":
        return bool(host.run("test -d %s", path).rc == 0)
    if spec.kind == "contains":
        return bool(host.run("grep -qF %s %s", spec.text, path).rc == 0)
    result = host.run("cat %s", path)
    return result.rc == 0 and re.search(f"^{re.escape(spec.text)}$", result.stdout, re.MULTILINE) is not None


def run_lab(endpoints: list[WinRMEndpoint], roots: list[Path], checks: list[Spec],
            runner: str = "python") -> dict[str, bool]:
    """The lab's verify step over every endpoint, one WinRM shell each, with ``runner`` (python or powershell)."""
    verdicts = {}
    for index, (ep, root) in enumerate(zip(endpoints, roots, strict=True)):
        suite = lab_suite(checks, root)
        variables = {"ansible_host": "127.0.0.1", "ansible_port": ep.port, "ansible_user": USER,
                     "ansible_password": PASSWORD, "ansible_winrm_scheme": "http", "ansible_winrm_transport": "ntlm",
                     "lab_runner": runner, "ansible_python_interpreter": sys.executable}
        with WinRMTransport(f"sbx-{index}", variables) as transport:
            output = run_runner(transport, compile_suite(suite, str(root), {}), 300)
        if runner == "powershell":  # the stand-in runs no check: its answer must be the bootstrap's end line
            if output.exit_code != 0 or f'"checks": {len(checks)}' not in output.stdout.decode():
                raise RuntimeError(f"the runner.ps1 path did not reach the stand-in's end line: {output!r}"[:2000])
            continue
        verdicts.update({f"sbx-{index}/{r.check_id}": r.status is Status.PASS for r in parse_results(suite, output)})
    return verdicts


def run_lab_ps1(endpoints: list[WinRMEndpoint], roots: list[Path], checks: list[Spec]) -> dict[str, bool]:
    return run_lab(endpoints, roots, checks, "powershell")


def run_testinfra(endpoints: list[WinRMEndpoint], roots: list[Path], checks: list[Spec]) -> dict[str, bool]:
    verdicts = {}
    for index, (ep, root) in enumerate(zip(endpoints, roots, strict=True)):
        host = testinfra.get_host(f"winrm://{USER}:{PASSWORD}@127.0.0.1:{ep.port}?no_ssl=true&no_verify_ssl=true")
        for spec in checks:
            verdicts[f"sbx-{index}/{spec.id}"] = testinfra_check(host, spec, root)
    return verdicts


@dataclass(frozen=True)
class Measured:
    seconds: list[float]
    counters: Counters  # summed over the endpoints, for one run
    verdicts: dict[str, bool]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


Tool = Callable[[list[WinRMEndpoint], list[Path], list[Spec]], dict[str, bool]]


def measure(runs: int, endpoints: list[WinRMEndpoint], roots: list[Path], checks: list[Spec],
            tools: dict[str, Tool]) -> dict[str, Measured]:
    """``runs`` runs of every tool, interleaved (the order rotated each run); counters of the last run."""
    seconds: dict[str, list[float]] = {name: [] for name in tools}
    counters: dict[str, Counters] = {}
    verdicts: dict[str, dict[str, bool]] = {}
    names = list(tools)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            for ep in endpoints:
                ep.reset_counters()
            started = time.perf_counter()
            verdicts[name] = tools[name](endpoints, roots, checks)
            seconds[name].append(time.perf_counter() - started)
            summed = [ep.counters for ep in endpoints]
            counters[name] = Counters(**{field: sum(getattr(c, field) for c in summed)
                                         for field in Counters.__dataclass_fields__})
    return {name: Measured(seconds[name], counters[name], verdicts[name]) for name in tools}


def table(lab: Measured, ps1: Measured, infra: Measured, sandboxes: int, checks: int) -> str:
    rows = [("sandboxes x checks", f"{sandboxes} x {checks}", f"{sandboxes} x {checks}", f"{sandboxes} x {checks}",
             "")]
    for label, name in (("WinRS shells created", "shells_created"), ("HTTP round trips", "http_requests"),
                        ("TCP connections", "connections"), ("commands run", "commands_run"),
                        ("NTLM logons", "logons_ntlm")):
        ours, windows, theirs = (getattr(m.counters, name) for m in (lab, ps1, infra))
        rows.append((label, str(ours), str(windows), str(theirs), f"{theirs / windows:.1f}x" if windows else "-"))
    paired = statistics.median(t / o for t, o in zip(infra.seconds, lab.seconds, strict=True))
    rows.append((f"wall time, median of {len(lab.seconds)}", f"{lab.median:.2f} s", "(not Windows)",
                 f"{infra.median:.2f} s", f"{paired:.1f}x vs python runner"))
    header = ("", "lab, python runner", "lab, runner.ps1 path", "testinfra winrm://", "testinfra / lab (ps1)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5,
                        help="runs per side, interleaved; the median time is reported (5)")
    parser.add_argument("--sandboxes", type=int, default=4, help="WinRM endpoints, one per sandbox (4)")
    parser.add_argument("--checks", type=int, default=50, help="checks per sandbox (50)")
    args = parser.parse_args(argv)
    checks = specs(args.checks)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="winrm-bench-")))
        roots = [work / f"sbx-{i}" for i in range(args.sandboxes)]
        for root in roots:
            populate(root, checks)
        bin_dir = work / "bin"
        powershell_stand_in(bin_dir, FACTS)
        path = f"{bin_dir}:{os.environ['PATH']}"
        endpoints = [stack.enter_context(WinRMEndpoint(users={USER: PASSWORD}, env={"PATH": path})) for _ in roots]
        measured = measure(args.runs, endpoints, roots, checks,
                           {"lab": run_lab, "lab-ps1": run_lab_ps1, "testinfra": run_testinfra})
    lab, ps1, infra = measured["lab"], measured["lab-ps1"], measured["testinfra"]
    print(table(lab, ps1, infra, args.sandboxes, args.checks))
    failing = sum(1 for ok in lab.verdicts.values() if not ok)
    agree = sum(1 for key, ok in lab.verdicts.items() if infra.verdicts.get(key) == ok)
    print(f"\nverdicts agree on {agree}/{len(lab.verdicts)} checks ({failing} fail on purpose in both)")
    for name, m in measured.items():
        print(f"{name} runs (s): {', '.join(f'{s:.2f}' for s in m.seconds)}")
    shells_ok = lab.counters.shells_created == ps1.counters.shells_created == args.sandboxes
    trips_ok = infra.counters.http_requests >= 20 * ps1.counters.http_requests
    print(f"targets: lab shells == sandboxes: {'met' if shells_ok else 'MISSED'}; "
          f">= 20x fewer round trips on the runner.ps1 path: {'met' if trips_ok else 'MISSED'}")
    return 0 if agree == len(lab.verdicts) and shells_ok and trips_ok else 1


if __name__ == "__main__":
    sys.exit(main())
