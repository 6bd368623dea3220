"""How long a local sandbox's reset takes to stop its processes: this tree against a baseline.

Run: ``python -m benchmarks.local_stop [--runs N] [--baseline REV]``. Each run starts a daemon in a
sandbox tree (its own session, as ``setsid`` makes one; it exits on SIGTERM; it is this process's
child, so it stays a zombie until reaped, as lab's own boot-script children do) with its pid in
``run/``, then times ``stop_processes``, in a fresh process run with this tree's code and in one
run with the whole ``lab`` package as of ``--baseline`` (default ``main``; extracted by ``git
archive``, so any revision works, before or after the change), interleaved run for run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DAEMON = "import os, time; os.write(1, b'up'); time.sleep(300)"
HERE = Path(__file__).resolve().parent.parent
# One timed stop, run with one checkout's code: the daemon is that process's own child.
ONE = f"""
import subprocess, sys, tempfile, time
from pathlib import Path
from lab.sandboxes.local import stop_processes
root = Path(tempfile.mkdtemp(prefix="lab-stop-bench-"))
(root / "run").mkdir()
proc = subprocess.Popen([sys.executable, "-c", {DAEMON!r}, str(root)], stdout=subprocess.PIPE, start_new_session=True)
assert proc.stdout.read(2) == b"up"
(root / "run" / "daemon.pid").write_text(f"{{proc.pid}}\\n")
started = time.perf_counter()
stop_processes(root)
print(time.perf_counter() - started)
proc.kill()
proc.wait()
"""


def checkout(revision: str, into: Path) -> Path | None:
    """``revision``'s ``lab`` package extracted under ``into`` (its whole code, so a stop_processes
    that calls helpers of its own revision runs as it did), or None when git does not know it."""
    archive = subprocess.run(["git", "archive", revision, "lab"], cwd=HERE, capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def one(code: Path) -> float:
    """Seconds ``code``'s ``stop_processes`` takes to stop a fresh daemon in a fresh tree, in a fresh
    process whose current directory is ``code`` (so ``import lab`` is that code's)."""
    done = subprocess.run([sys.executable, "-c", ONE], cwd=code, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(code)})
    return float(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args(argv)
    contenders = {"this tree": HERE}
    with tempfile.TemporaryDirectory(prefix="lab-stop-baseline-") as scratch:
        old = checkout(args.baseline, Path(scratch) / "code")
        if old is None:
            print(f"baseline {args.baseline!r} not available")
        else:
            contenders[args.baseline] = old
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, code in contenders.items():
                times[name].append(one(code))
    for name, values in times.items():
        print(f"{name:12} stop_processes median {statistics.median(values) * 1000:7.0f} ms "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, {len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
