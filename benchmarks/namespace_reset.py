"""How long a namespace sandbox takes to reset: from "discard everything" to "sshd answers".

Run as root: ``python -m benchmarks.namespace_reset [--resets N] [--state-dir DIR]``. Each
reset writes a file in the sandbox first (so there is something to discard), and the time
counted is ``NamespaceProvider.reset()``: kill the sandbox's processes, drop its upper layer,
seed a new one, boot, and wait for sshd's banner. Prints one line per reset and a summary
(min, median, p90, max); exits 1 if the median is 2 seconds or more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lab.model import SandboxSpec
from lab.sandboxes.namespace.provider import NamespaceProvider
from lab.transports.ssh import SSHTransport

TARGET_S = 2.0


def measure(state_dir: Path, resets: int) -> list[float]:
    """Reset one sandbox ``resets`` times (after a write in it each time); the durations in seconds."""
    provider = NamespaceProvider(state_dir)
    spec = SandboxSpec("bench-reset", "debian-12", "namespace", {})
    durations = []
    try:
        handle = provider.reset(spec)
        for index in range(resets):
            with SSHTransport(spec.name, handle.facts) as ssh:
                ssh.execute(["sh", "-c", "echo dirty > /etc/bench-marker"], b"", 30)
            started = time.perf_counter()
            handle = provider.reset(spec)
            durations.append(time.perf_counter() - started)
            print(f"reset {index + 1:>3}: {durations[-1] * 1000:7.1f} ms")
    finally:
        provider.destroy(spec)
    return durations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as scratch:
        durations = measure(args.state_dir or Path(scratch), args.resets)
    ordered = sorted(durations)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    median = statistics.median(ordered)
    print(f"namespace reset over {len(ordered)} runs: min {ordered[0] * 1000:.0f} ms, median {median * 1000:.0f} ms, "
          f"p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms (target < {TARGET_S:.0f} s)")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
