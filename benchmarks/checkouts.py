"""What the before/after benchmarks (``campaign_cost``, ``rollout_cost``) share: their command line
(``--before``, ``--after``, a list of sizes, ``--runs``), fresh copies of a checkout's default lab,
and ``python``/``lab`` run with one checkout's code on ``PYTHONPATH``."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

AFTER = Path(__file__).resolve().parent.parent
LAB_FILES = ("lab.yml", "agreement.yml", "inventory", "playbooks", "products", "test_suites", "keys")
BUILD = "care-planner@2.0.0"
CLI = ("-c", "from lab.cli import main; main()")  # ``lab`` as the checkout's code runs it


def before_and_after(doc: str | None, sizes: str, default_sizes: str, runs: int) -> tuple[dict[str, Path], list[int],
                                                                                           int]:
    """Parse the command line: the two checkouts by name (``before``, ``after``), the sizes given as
    ``--SIZES`` (comma-separated) and ``--runs``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare with")
    parser.add_argument("--after", type=Path, default=AFTER, help="the code measured as after (default: this checkout)")
    parser.add_argument(f"--{sizes}", dest="sizes", metavar=sizes.upper(), default=default_sizes)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--only", choices=("before", "after"),
                        help="measure one code alone (when both do not fit in the time there is; no ratio)")
    args = parser.parse_args()
    codes = {"before": args.before.resolve(), "after": args.after.resolve()}
    return ({name: code for name, code in codes.items() if args.only in (None, name)},
            [int(size) for size in args.sizes.split(",")], args.runs)


def copy_lab(code: Path, target: Path, group: str, names: list[str]) -> Path:
    """A copy of ``code``'s default lab at ``target`` whose inventory ``group`` has the hosts ``names``."""
    target.mkdir(parents=True)
    for name in LAB_FILES:
        source = code / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target / name)
    inventory = target / "inventory" / "hosts.yml"
    lines = inventory.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{group}:")
    at = next(i for i in range(start, len(lines)) if lines[i].strip() == "hosts:") + 1
    end = next((i for i in range(at, len(lines)) if not lines[i].startswith("        ")), len(lines))
    lines[at:end] = [f"        {name}: {{}}" for name in names]
    inventory.write_text("\n".join(lines) + "\n")
    return target / "lab.yml"


def code_env(code: Path) -> dict[str, str]:
    """This environment with ``code`` on ``PYTHONPATH`` (and ``CI`` set: no live progress view)."""
    return {**os.environ, "PYTHONPATH": str(code), "CI": "1"}


def python(code: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with ``code`` on the path, in ``cwd`` (never a checkout: ``-c`` puts it first on sys.path)."""
    return subprocess.run([sys.executable, *args], env=code_env(code), cwd=cwd, capture_output=True, text=True,
                          check=False)


def medians(measured: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Per checkout, the median wall seconds and the median CPU-seconds of its runs."""
    return {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in measured.items()}


def print_table(label: str, unit: str, rows: list[tuple[int, dict[str, tuple[float, float]]]]) -> None:
    """The Markdown table of before/after medians, one row per size: ``label`` names the size's
    column (``sandboxes``), ``unit`` what the CPU-seconds are divided by (``sandbox``). With one
    code measured (``--only``), its columns alone."""
    if rows and len(rows[0][1]) == 1:
        name = next(iter(rows[0][1]))
        print(f"\n| {label} | {name} wall s | {name} CPU-s/{unit} |\n|--:|--:|--:|")
        for size, m in rows:
            wall, cpu = m[name]
            print(f"| {size} | {wall:.1f} | {cpu / size:.2f} |")
        return
    print(f"\n| {label} | before wall s | after wall s | before CPU-s/{unit} | after CPU-s/{unit} | "
          "CPU ratio after/before | wall ratio after/before |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for size, m in rows:
        (bw, bc), (aw, ac) = m["before"], m["after"]
        print(f"| {size} | {bw:.1f} | {aw:.1f} | {bc / size:.2f} | {ac / size:.2f} | {ac / bc:.2f} | {aw / bw:.2f} |")
