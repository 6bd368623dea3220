"""The harness of the Linux check differential (test_linux_checks_differential.py).

A case is one lab check and the host's own answer to the same question: a shell snippet (the
oracle) run on the same host, whose exit status 0 means "the check holds" (``stat``, ``pgrep``,
``sysctl -n``, ``dpkg --compare-versions``, ``ss``, ``findmnt``, a real ``connect()`` ...).
pytest-testinfra's answer to the question is recorded beside it. A target is a host the three are
asked on: this machine through the local transport, or a namespace sandbox over SSH.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.checks.manifest import run_suite
from lab.model import Check, Result, Status, Suite
from lab.transports.base import Transport

SUITE_CAP = 300.0


@dataclass(frozen=True)
class Case:
    """A lab check, the oracle that judges it on the host, and testinfra's way to ask the same."""

    id: str
    type: str
    params: dict[str, Any]
    oracle: str  # sh snippet on the target: exit 0 = the check must pass
    testinfra: Callable[[Any], bool] | None = None  # None: testinfra has no way to ask this
    differs: str = ""  # why testinfra answers otherwise on purpose ("" = it agrees with the host)
    error: str = ""  # the lab must answer error (it cannot judge), with this text in its message


@dataclass
class Verdict:
    """What the host, the lab and testinfra said about one case."""

    case: Case
    host: bool
    lab: Result
    testinfra: bool | str | None  # True/False, "error: ..." when it raised, None when it cannot ask

    @property
    def lab_agrees(self) -> bool:
        if self.case.error:
            return self.lab.status is Status.ERROR and self.case.error in self.lab.message
        return self.lab.status in (Status.PASS, Status.FAIL) and (self.lab.status is Status.PASS) is self.host

    @property
    def testinfra_disagrees(self) -> bool:
        return self.testinfra is not None and self.testinfra is not self.host


@dataclass
class Target:
    """A host the cases are asked on: ``run`` executes a shell script there."""

    name: str  # "local" or "ssh"
    transport: Transport
    testinfra_host: Any
    can_edit_system: bool  # its /etc, dpkg database and architectures are thrown away afterwards
    verdicts: list[Verdict] = field(default_factory=list)

    def sh(self, script: str, stdin: bytes | None = None, timeout: float = 120.0) -> tuple[int, str, str]:
        """Run ``script`` on the target. It travels on stdin (``sh -s``) unless ``stdin`` is data for it,
        so that ``pgrep -f`` never finds an oracle's own text in the shell's command line."""
        argv, data = (["sh", "-s"], script.encode()) if stdin is None else (["sh", "-c", script], stdin)
        result = self.transport.execute(argv, data, timeout)
        return result.exit_code, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")

    def must(self, script: str, stdin: bytes | None = None) -> str:
        code, out, err = self.sh(script, stdin)
        assert code == 0, f"on {self.name}: {script[:300]}\nexit {code}: {err[-2000:]}"
        return out

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.must(f"cat > {shlex.quote(path)} && chmod {mode:o} {shlex.quote(path)}", data)

    def judge(self, cases: list[Case], root: str = "/") -> list[Verdict]:
        """Ask the lab (one suite, one round trip, as on a sandbox whose root is ``root``), the host
        and testinfra about every case."""
        assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
        suite = Suite("differential", Path(__file__), True, ("debian-12",),
                      tuple(Check(c.id, c.type, c.params, 20.0, 0) for c in cases))
        lab = {r.check_id: r for r in run_suite(self.transport, suite, root, dict(self.transport.variables), SUITE_CAP)}
        host = self.oracles(cases)
        verdicts = [Verdict(c, host[c.id], lab[c.id], self.ask_testinfra(c)) for c in cases]
        self.verdicts += verdicts
        return verdicts

    def oracles(self, cases: list[Case]) -> dict[str, bool]:
        """Every case's oracle in one script, each in its own subshell: {case id: exit status == 0}."""
        script = "\n".join(f"( {c.oracle}\n) </dev/null >/dev/null 2>&1; echo \"{i} $?\"" for i, c in enumerate(cases))
        out = self.must(script)
        codes = dict(line.split() for line in out.splitlines())
        return {c.id: codes[str(i)] == "0" for i, c in enumerate(cases)}

    def ask_testinfra(self, case: Case) -> bool | str | None:
        if case.testinfra is None:
            return None
        try:
            return bool(case.testinfra(self.testinfra_host))
        except Exception as exc:  # testinfra raises where it cannot tell (a sysctl it cannot read, LSB 2)
            return f"error: {type(exc).__name__}"


def problems(verdicts: list[Verdict]) -> list[str]:
    """Every case where the lab disagrees with the host, or testinfra disagrees other than documented."""
    found = []
    for v in verdicts:
        if not v.lab_agrees:
            found.append(f"{v.case.id}: host says {v.host}, lab says {v.lab.status.value}: {v.lab.message}")
        if v.case.testinfra is not None and v.testinfra_disagrees != bool(v.case.differs):
            said = "disagrees" if v.testinfra_disagrees else "agrees"
            found.append(f"{v.case.id}: testinfra {said} with the host ({v.testinfra}, host {v.host}); "
                         f"documented: {v.case.differs or 'agrees'}")
    return found


def table(target: str, verdicts: list[Verdict]) -> str:
    """The verdicts as lines: case, host, lab, testinfra (and why it differs)."""
    agree, differ = sum(v.lab_agrees for v in verdicts), sum(v.testinfra_disagrees for v in verdicts)
    lines = [f"--- {target}: {len(verdicts)} cases, lab agrees with the host in {agree}, "
             f"testinfra disagrees in {differ}"]
    for v in verdicts:
        ti = "-" if v.testinfra is None else v.testinfra
        note = f"  [testinfra: {v.case.differs}]" if v.testinfra_disagrees else ""
        lines.append(f"{v.case.id:60} host={v.host!s:5} lab={v.lab.status.value:5} testinfra={ti!s:5}{note}")
    return "\n".join(lines)


def report(path: Path, targets: list[Target]) -> None:
    """All verdicts of all targets as JSON (one record per case and target)."""
    records = [{"target": t.name, "case": v.case.id, "type": v.case.type, "params": v.case.params,
                "oracle": v.case.oracle, "host": v.host, "lab": v.lab.status.value, "lab_message": v.lab.message,
                "testinfra": v.testinfra, "testinfra_differs_on_purpose": v.case.differs}
               for t in targets for v in t.verdicts]
    path.write_text(json.dumps(records, indent=1, default=str))


def build_deb(work: Path, name: str, version: str, arch: str, multi_arch: bool = False) -> bytes:
    """A tiny .deb (one file under /usr/share/doc) built with dpkg-deb, as bytes."""
    tree = work / f"{name}_{arch}"
    (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (tree / "usr" / "share" / "doc" / name).mkdir(parents=True, exist_ok=True)
    (tree / "usr" / "share" / "doc" / name / f"README.{arch}").write_text(f"{name} {version}\n")
    control = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}",
               "Maintainer: lab <lab@example.invalid>", "Description: a package of the lab's differential test"]
    if multi_arch:
        control.append("Multi-Arch: same")
    (tree / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    out = work / f"{name}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)], check=True,
                   capture_output=True)
    return out.read_bytes()
