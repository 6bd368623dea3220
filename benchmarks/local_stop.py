"""How long a local sandbox's reset takes to stop its processes: this tree against a baseline.

Run: ``python -m benchmarks.local_stop [--runs N] [--baseline REV]``. Each run starts a daemon in a
sandbox tree (its own session, as ``setsid`` makes one; it exits on SIGTERM; it is this process's
child, so it stays a zombie until reaped, as lab's own boot-script children do) with its pid in
``run/``, then times ``stop_processes`` of this tree and of ``lab/sandboxes/local.py`` as of
``--baseline`` (default ``main``), interleaved run for run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.sandboxes.local import stop_processes

DAEMON = "import os, time; os.write(1, b'up'); time.sleep(300)"


def baseline(revision: str) -> Callable[[Path], Any] | None:
    """``stop_processes`` as of ``revision`` (its function alone), or None."""
    shown = subprocess.run(["git", "show", f"{revision}:lab/sandboxes/local.py"], capture_output=True, check=False,
                           cwd=Path(__file__).resolve().parent)
    if shown.returncode != 0:
        return None
    source = shown.stdout.decode()
    start = source.index("def stop_processes(")
    end = source.index("\nclass ", start)
    namespace: dict[str, Any] = {"Path": Path, "os": os, "signal": signal, "time": time}
    exec(compile("from __future__ import annotations\n" + source[start:end], f"{revision}:local.py", "exec"),
         namespace)
    stop: Callable[[Path], Any] = namespace["stop_processes"]
    return stop


def one(stop: Callable[[Path], Any]) -> float:
    """Seconds ``stop`` takes to stop a fresh daemon in a fresh tree."""
    root = Path(tempfile.mkdtemp(prefix="lab-stop-bench-"))
    (root / "run").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(root)], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.read(2) == b"up"
    (root / "run" / "daemon.pid").write_text(f"{proc.pid}\n")
    started = time.perf_counter()
    stop(root)
    took = time.perf_counter() - started
    proc.kill()
    proc.wait()
    proc.stdout.close()
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args(argv)
    contenders: dict[str, Callable[[Path], Any]] = {"this tree": stop_processes}
    old = baseline(args.baseline)
    if old is None:
        print(f"baseline {args.baseline!r} not available")
    else:
        contenders[args.baseline] = old
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.runs):
        for name, stop in contenders.items():
            times[name].append(one(stop))
    for name, values in times.items():
        print(f"{name:12} stop_processes median {statistics.median(values) * 1000:7.0f} ms "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, {len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
