"""What a campaign costs per sandbox, before and after a change, measured in one run.

``python -m benchmarks.campaign_cost --before DIR [--sizes 1,3,6,12] [--runs 2]``

``DIR`` is a checkout of the code to compare with (e.g. ``git worktree add /tmp/before main``);
this checkout is "after". For each size N, each code gets a fresh copy of its own default lab
with N local sandboxes (ts-sbx-01..N, lab.yml's ``parallel`` as it is), builds build A, runs one
warm-up campaign (after it, a lab with golden baselines holds its image, as every campaign but
the first finds it), then ``--runs`` measured campaigns, before and after interleaved. Each
campaign is a whole ``lab run`` process started by the same interpreter (``PYTHONPATH`` picks
the code); CPU-seconds are its whole process tree's (``benchmarks/cpu.py``: a cpuacct cgroup
of its own as root, so ansible-playbook, its workers and any helper that leaves its parent
count; otherwise the waited-for children's rusage). Prints a table per size: median wall and
CPU-seconds per campaign and per sandbox, and the after/before ratios.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks import cpu
from benchmarks.checkouts import BUILD, CLI, before_and_after, code_env, copy_lab, medians, print_table, python


def make_lab(code: Path, target: Path, sandboxes: int) -> Path:
    """A copy of ``code``'s default lab at ``target`` with ``sandboxes`` local sandboxes."""
    return copy_lab(code, target, "sandboxes", [f"ts-sbx-{i:02d}" for i in range(1, sandboxes + 1)])


def lab(code: Path, lab_yml: Path, *args: str) -> tuple[float, float, int]:
    """Run ``lab ARGS`` with ``code`` on the path: (wall seconds, CPU-seconds of its whole tree, exit code)."""
    # run in the lab's directory: ``python -c`` puts the working directory first on sys.path
    done = cpu.run([sys.executable, *CLI, "--lab", str(lab_yml), *args], code_env(code), lab_yml.parent)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-2000:])
    return done.wall, done.cpu, done.returncode


def stop(code: Path, lab_yml: Path) -> None:
    """Stop the services the lab's sandboxes run (the journal of each)."""
    script = ("import sys; from lab.config.labfile import load_lab; from lab.sandboxes.local import LocalProvider\n"
              "c = load_lab(__import__('pathlib').Path(sys.argv[1])); p = LocalProvider(c.state_dir)\n"
              "[p.destroy(s) for s in c.sandboxes]")
    python(code, lab_yml.parent, "-c", script, str(lab_yml))


def main() -> int:
    codes, sizes, runs = before_and_after(__doc__, "sizes", "1,3,6,12", 2)
    rows = []
    found = cpu.cgroup_root()
    print(f"CPU-seconds counted by: {found[2] if found else 'rusage of waited-for children'}")
    with tempfile.TemporaryDirectory(prefix="lab-campaign-cost-") as scratch:
        for size in sizes:
            labs = {name: make_lab(code, Path(scratch) / f"{name}-{size}", size) for name, code in codes.items()}
            measured: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
            try:
                for name, code in codes.items():
                    assert lab(code, labs[name], "build", BUILD)[2] == 0, f"{name}: lab build failed"
                    lab(code, labs[name], "run", BUILD, "--no-reports")  # warm-up
                for _ in range(runs):
                    for name, code in codes.items():
                        wall, used, rc = lab(code, labs[name], "run", BUILD, "--no-reports")
                        if rc != 0:
                            raise SystemExit(f"{name}: lab run exited {rc} with {size} sandbox(es)")
                        measured[name].append((wall, used))
                        print(f"{size:>3} sandbox(es) {name:<6} wall {wall:6.1f} s  cpu {used:6.1f} s", flush=True)
            finally:
                for name, code in codes.items():
                    stop(code, labs[name])
            rows.append((size, medians(measured)))
    print_table("sandboxes", "sandbox", rows)
    walls = {size: m["after"][0] for size, m in rows if "after" in m}
    if 6 in walls and 12 in walls:
        print(f"\nafter: 12 sandboxes take {walls[12] / walls[6]:.2f}x the wall time of 6 (target at most 1.6x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
