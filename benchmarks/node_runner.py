"""Checks per second of runner.py on the node, next to Goss's published figure.

Run: ``python -m benchmarks.node_runner [--runs N] [--baseline REV] [--python PATH]``. It builds a
manifest like the one in issue 15 (900 file, 100 user and 22 package checks against this
machine's own root: files under /usr/bin, /usr/lib and /etc, every tenth with mode, owner and
group; users from /etc/passwd; packages from the dpkg database), then runs it exactly as a
sandbox does (``python3 -c PYTHON_BOOTSTRAP`` with the runner and the manifest on stdin, see
lab.checks.delivery) and times that whole process from start to exit. The runner of
``--baseline`` (a git revision, default ``main``; ``--baseline ''`` skips it) runs the same
manifest the same way (its source compiled on the node, as runner.py travelled before it was sent
precompiled), interleaved with this tree's runner run for run, equal counts, so the
ratio compares like with like under the same load. ``--python`` defaults to Debian's
/usr/bin/python3, what a Debian sandbox runs.

Goss (``goss validate``) is not on PyPI, Debian or npm, the only registries this machine reaches,
so it cannot be run here; its README publishes "1,122 checks in 52 ms" on the node, which is the
figure compared against (a Go binary versus a Python process, both whole processes).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import statistics
import subprocess
import sys
import time

from lab.checks import runner
from lab.checks.delivery import PYTHON_BOOTSTRAP, python_runner_source, runner_frame

GOSS_CHECKS, GOSS_SECONDS = 1122, 0.052
GOSS_RATE = GOSS_CHECKS / GOSS_SECONDS
RUNNER = os.path.abspath(runner.__file__)


def node_files(count: int) -> list[str]:
    """``count`` existing regular files and directories of this machine, in a stable order."""
    found: list[str] = []
    for top in ("/usr/bin", "/usr/lib", "/etc", "/usr/share"):
        for directory, dirs, files in os.walk(top):
            dirs.sort()
            for name in [directory, *(os.path.join(directory, f) for f in sorted(files))]:
                if not os.path.islink(name) and name not in found:
                    found.append(name)
                if len(found) == count:
                    return found
    raise SystemExit(f"only {len(found)} files found, {count} wanted")


def installed_packages(count: int) -> list[str]:
    """``count`` package names from the dpkg database of this machine."""
    names = []
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("Package: "):
                names.append(line.split()[1])
    if len(names) < count:
        raise SystemExit(f"only {len(names)} packages in /var/lib/dpkg/status, {count} wanted")
    return names[:: max(1, len(names) // count)][:count]


def manifest(files: int = 900, users: int = 100, packages: int = 22) -> dict[str, object]:
    """The benchmark's manifest: ``files`` file checks (every tenth also asks for mode, owner and
    group), ``users`` user checks (existing accounts first, then absent names) and ``packages``
    package checks, against ``/``."""
    checks: list[dict[str, object]] = []
    for index, path in enumerate(node_files(files)):
        params: dict[str, object] = {"path": path}
        if index % 10 == 0:
            st = os.stat(path)
            params |= {"mode": f"{st.st_mode & 0o7777:04o}", "owner": st.st_uid, "group": "root"}
        checks.append({"id": f"file-{index}", "type": "file", "params": params})
    accounts = [entry.pw_name for entry in pwd.getpwall()][:users]
    accounts += [f"nobody-{n}" for n in range(users - len(accounts))]
    for index, name in enumerate(accounts):
        checks.append({"id": f"user-{index}", "type": "user",
                       "params": {"name": name, "exists": not name.startswith("nobody-")}})
    for index, name in enumerate(installed_packages(packages)):
        checks.append({"id": f"package-{index}", "type": "package", "params": {"name": name}})
    return {"format": runner.FORMAT, "suite": "node-bench", "root": "/", "checks": checks}


def run_once(python: str, stdin: bytes) -> tuple[float, dict[str, int]]:
    """One whole runner process as a sandbox runs it: wall seconds and the statuses it printed."""
    started = time.perf_counter()
    done = subprocess.run([python, "-c", PYTHON_BOOTSTRAP], input=stdin, capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for line in done.stdout.decode().splitlines():
        item = json.loads(line)
        if "status" in item:
            statuses[item["status"]] = statuses.get(item["status"], 0) + 1
    return elapsed, statuses


def baseline_runner(revision: str) -> bytes | None:
    """The source of runner.py as of ``revision``; None when git cannot show it."""
    shown = subprocess.run(["git", "show", f"{revision}:lab/checks/runner.py"], capture_output=True,
                           cwd=os.path.dirname(RUNNER), check=False)
    if shown.returncode != 0:
        print(f"baseline {revision!r} not available: {shown.stderr.decode().strip()}")
        return None
    return shown.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline", default="main", help="git revision of the runner to compare with ('' skips)")
    debian_python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    parser.add_argument("--python", default=debian_python, help="the sandbox's interpreter (default %(default)s)")
    args = parser.parse_args(argv)
    data = json.dumps(manifest(), sort_keys=True).encode()
    count = len(json.loads(data)["checks"])
    contenders = {"runner.py (this tree)": runner_frame(python_runner_source(), data)}
    old = baseline_runner(args.baseline) if args.baseline else None
    if old is not None:
        # as it travelled before the runner was sent precompiled: source only, compiled on the node
        contenders[f"runner.py ({args.baseline})"] = runner_frame(old, data, precompiled=False)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    verdicts: dict[str, dict[str, int]] = {}
    start_up: list[float] = []
    for _ in range(args.runs):  # interleaved: one run of each, then the next round
        for name, stdin in contenders.items():
            elapsed, statuses = run_once(args.python, stdin)
            times[name].append(elapsed)
            verdicts[name] = statuses
        start_up.append(run_empty(args.python))
    print(f"manifest: {count} checks (900 file, 100 user, 22 package) against /; {args.runs} runs each, "
          f"interleaved; each a whole `{args.python} -c PYTHON_BOOTSTRAP` process, as on a sandbox")
    print(f"{'':28}{'median s':>10}{'checks/s':>11}{'vs Goss':>10}  statuses")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28}{median:>10.3f}{count / median:>11.0f}{(count / median) / GOSS_RATE:>9.2f}x  "
              f"{dict(sorted(verdicts[name].items()))}")
    print(f"{'Goss (published, not run)':28}{GOSS_SECONDS:>10.3f}{GOSS_RATE:>11.0f}{1:>9.2f}x  "
          f"({GOSS_CHECKS} checks in {GOSS_SECONDS * 1000:.0f} ms; goss cannot be installed here)")
    print(f"{'python start-up alone':28}{statistics.median(start_up):>10.3f}  (inside every runner time above)")
    if len(times) == 2:
        new, before = (statistics.median(v) for v in times.values())
        print(f"this tree takes {new / before:.2f}x the time of {args.baseline}'s runner")
    return 0


def run_empty(python: str) -> float:
    """Wall seconds of a Python process that runs nothing and exits."""
    started = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
