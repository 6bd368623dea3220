"""The ``testinfra`` check type: existing pytest-testinfra files, run by the controller against a sandbox.

The runner on the sandbox never sees these checks. The controller runs ``pytest`` with
pytest-testinfra's plugin in a subprocess, reaching the sandbox the way verify does: testinfra's
``ssh`` backend with an ssh config written from the same inventory variables the ssh transport
reads (host, port, user, key, the pinned ``UserKnownHostsFile``, ``StrictHostKeyChecking yes``), or
its ``local`` backend for a local sandbox (whose root directory is in ``$SANDBOX_ROOT``, as for
command checks). pytest writes a JUnit XML file; each test case in it becomes one result,
``<check id>/<module>::<test>``, beside the check's own result, which sums them up. No secret is
ever on the command line: the ssh transport refuses passwords, and the config file is private.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.model import Check, Result, Status, Suite
from lab.transports.base import Transport
from lab.transports.ssh import SSHSettings, option_values

CONTROLLER_TYPES = frozenset({"testinfra"})  # check types the controller runs itself
MAX_MESSAGE = 2000
ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Connection:
    """How pytest-testinfra reaches one sandbox: ``--hosts`` and, for ssh, the ssh config's text."""

    hosts: str  # testinfra's host spec: "ssh://<alias>" or "local://"
    host_id: str  # the id testinfra gives that host in test names ("ssh://<alias>", "local")
    ssh_config: str | None
    alias: str | None
    env: dict[str, str]


@dataclass(frozen=True)
class TestCase:
    """One test of a pytest run, as its JUnit file tells it."""

    name: str  # "<module>::<test>[params]", the host's id taken out of the params
    status: Status
    message: str
    seconds: float


def connection_for(transport: str, inventory_host: str, variables: Mapping[str, Any], root: str) -> Connection:
    """The testinfra connection for a sandbox reached by ``transport`` (``ssh`` or ``local``).

    ConfigError for another transport, or for ssh arguments that an ssh config cannot carry.
    """
    env = {} if root in ("", "/") else {"SANDBOX_ROOT": root}
    if transport == "local":
        return Connection("local://", "local", None, None, env)
    if transport != "ssh":
        raise ConfigError(f"testinfra checks run over the ssh or local transport; {inventory_host} is reached "
                          f"over {transport}")
    settings = SSHSettings.from_variables(inventory_host, variables)
    alias = inventory_host if ALIAS.match(inventory_host) else "sandbox"
    return Connection(f"ssh://{alias}", f"ssh://{alias}", ssh_config_text(alias, settings), alias, env)


def ssh_config_text(alias: str, settings: SSHSettings) -> str:
    """An ssh config for testinfra's ssh backend that reaches the sandbox as the ssh transport does.

    The lab's own settings come first (ssh keeps the first value it reads, so the inventory's
    options add to them and cannot weaken host-key checking); ``%%CONTROL%%`` stands for the
    private ControlPath directory of one run.
    """
    lines = [f"Host {alias}", f"    HostName {settings.host}", "    BatchMode yes", "    StrictHostKeyChecking yes",
             f"    ConnectTimeout {settings.connect_timeout}", "    ControlPath %%CONTROL%%/master"]
    if settings.port is not None:
        lines.append(f"    Port {settings.port}")
    if settings.user is not None:
        lines.append(f"    User {settings.user}")
    if settings.private_key_file is not None:
        lines += [f"    IdentityFile {settings.private_key_file}", "    IdentitiesOnly yes"]
    if not only_o_options(settings.options):
        raise ConfigError(f"host {alias}: ansible_ssh_common_args/extra_args hold arguments other than -o options "
                          f"({' '.join(settings.options)}); testinfra checks reach the host through an ssh config, "
                          "which takes -o Key=Value options only")
    lines += [f"    {key} {value}" for key, value in option_values(list(settings.options))]
    return "\n".join(lines) + "\n"


def only_o_options(options: tuple[str, ...]) -> bool:
    """Whether ``options`` are all ``-o Key=Value`` (or ``-oKey=Value``): what an ssh config can say."""
    index = 0
    while index < len(options):
        if options[index] == "-o":
            index += 2
        elif options[index].startswith("-o"):
            index += 1
        else:
            return False
    return True


def pytest_command(files: list[Path], connection: Connection, work: Path, rootdir: Path) -> list[str]:
    """pytest with only testinfra's plugin, a private ini and basetemp, and a JUnit file in ``work``."""
    command = [sys.executable, "-m", "pytest", *map(str, files), "-q", "-p", "testinfra.plugin",
               "-p", "no:cacheprovider", "-c", str(work / "pytest.ini"), "--rootdir", str(rootdir),
               "--basetemp", str(work / "tmp"), "--junitxml", str(work / "junit.xml"),
               "-o", "junit_family=xunit2", "--hosts", connection.hosts]
    if connection.ssh_config is not None:
        command += ["--connection", "ssh", "--ssh-config", str(work / "ssh_config")]
    return command


def without_host(name: str, host_id: str) -> str:
    """A test name with testinfra's host parameter taken out: ``t[ssh://a-x]`` -> ``t[x]``, ``t[local]`` -> ``t``,
    so that a test has the same name on every sandbox."""
    head, bracket, params = name.partition("[")
    if not bracket or not params.endswith("]"):
        return name
    inner = params[:-1]
    if inner == host_id:
        return head
    if inner.startswith(host_id + "-"):
        inner = inner[len(host_id) + 1:]
    elif inner.endswith("-" + host_id):
        inner = inner[:-len(host_id) - 1]
    else:
        inner = inner.replace("-" + host_id + "-", "-", 1)
    return f"{head}[{inner}]"


def read_junit(path: Path, host_id: str) -> list[TestCase]:
    """The test cases of a JUnit XML file pytest wrote (collection errors included, as errors)."""
    cases = []
    for case in ET.parse(path).iter("testcase"):  # noqa: S314 - written by our own pytest run
        module, test = case.get("classname", ""), without_host(case.get("name", ""), host_id)
        status, message = Status.PASS, "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": Status.FAIL, "error": Status.ERROR, "skipped": Status.SKIP}[child.tag]
                message = case_message(child)
                break
        name = f"{module}::{test}" if module else test
        cases.append(TestCase(name, status, message[:MAX_MESSAGE], float(case.get("time", "0") or 0)))
    return cases


def case_message(element: ET.Element) -> str:
    """A failure's, error's or skip's message, with the first ``E`` line of its traceback when the
    message alone says little (``collection failure``)."""
    message = element.get("message") or element.tag
    detail = next((line[1:].strip() for line in (element.text or "").splitlines() if line.startswith("E ")), "")
    return f"{message}: {detail}" if detail and detail not in message else message


@dataclass(frozen=True)
class Run:
    """One pytest run: its cases, or why there are none."""

    cases: list[TestCase]
    exit_code: int | None
    problem: str | None  # pytest could not run, timed out, or wrote no JUnit file
    output: str


def run_once(files: list[Path], connection: Connection, rootdir: Path, timeout: float) -> Run:
    """Run pytest once in a private directory and read its JUnit file; stop the ssh master it left."""
    work = Path(tempfile.mkdtemp(prefix="lab-ti-"))
    try:
        os.chmod(work, 0o700)
        (work / "pytest.ini").write_text("[pytest]\n")
        if connection.ssh_config is not None:
            (work / "cm").mkdir()
            (work / "ssh_config").write_text(connection.ssh_config.replace("%%CONTROL%%", str(work / "cm")))
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
        env.update(connection.env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        proc = subprocess.Popen(pytest_command(files, connection, work, rootdir), cwd=rootdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return Run([], None, f"pytest did not finish within {timeout:.0f}s", tail(out))
        finally:
            stop_master(work, connection)
        junit = work / "junit.xml"
        if not junit.exists():
            return Run([], proc.returncode, f"pytest exited {proc.returncode} without a result file", tail(out))
        cases = read_junit(junit, connection.host_id)
        problem = None
        if proc.returncode not in (0, 1) and not any(c.status is Status.ERROR for c in cases):
            problem = f"pytest exited {proc.returncode}"
        return Run(cases, proc.returncode, problem, tail(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stop_master(work: Path, connection: Connection) -> None:
    """``ssh -O exit`` the ControlMaster testinfra's ssh backend started (it would linger 60 s)."""
    if connection.alias is None or not any((work / "cm").iterdir()):
        return
    subprocess.run(["ssh", "-F", str(work / "ssh_config"), "-O", "exit", connection.alias],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)


def tail(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(lines[-20:])[-MAX_MESSAGE:]


def testinfra_files(check: Check, suite_dir: Path) -> list[Path]:
    """The check's files, relative to its suite's directory; ConfigError naming one that is missing."""
    files = [(suite_dir / str(name)).resolve() for name in check.params.get("files", [])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"check {check.id!r}: testinfra file {missing[0]} does not exist")
    return files


def run_testinfra_check(check: Check, suite_dir: Path, connection: Connection, cap: float) -> list[Result]:
    """The check's own result first, then one result per test. A run with failures is run again up
    to ``retries`` times; a test that failed and then passed is ``flaky``, never a plain pass."""
    if check.skip:
        return [Result(check.id, Status.SKIP, check.skip, {}, 0, 0)]
    started = time.monotonic()
    try:
        files = testinfra_files(check, suite_dir)
    except ConfigError as exc:
        return [Result(check.id, Status.ERROR, str(exc), {}, 0, 0)]
    runs: list[Run] = []
    while True:
        runs.append(run_once(files, connection, suite_dir, min(check.timeout, cap)))
        if summary_status(runs[-1]) is Status.PASS or len(runs) > check.retries:
            break
    failed_before = {c.name: c.message for run in runs[:-1] for c in run.cases if c.status in (Status.FAIL,
                                                                                              Status.ERROR)}
    last = runs[-1]
    results = []
    for case in last.cases:
        status = Status.FLAKY if case.status is Status.PASS and case.name in failed_before else case.status
        evidence: dict[str, Any] = {"seconds": case.seconds}
        if status is Status.FLAKY:
            evidence["earlier_attempts"] = [{"status": "fail", "message": failed_before[case.name]}]
        results.append(Result(f"{check.id}/{case.name}", status, case.message, evidence,
                              int(case.seconds * 1000), len(runs)))
    duration = int((time.monotonic() - started) * 1000)
    status, message = summary(last, results)
    if status is Status.PASS and len(runs) > 1:
        status = Status.FLAKY
    evidence = {"files": [str(f.relative_to(suite_dir)) if f.is_relative_to(suite_dir) else str(f) for f in files],
                "host": connection.hosts, "tests": len(last.cases), "exit_code": last.exit_code,
                "counts": {s.value: sum(1 for r in results if r.status is s) for s in Status}}
    if last.problem or status is Status.ERROR:
        evidence["output"] = last.output
    return [Result(check.id, status, message, evidence, duration, len(runs)), *results]


def summary_status(run: Run) -> Status:
    if run.problem or not run.cases or any(c.status is Status.ERROR for c in run.cases):
        return Status.ERROR
    return Status.FAIL if any(c.status is Status.FAIL for c in run.cases) else Status.PASS


def summary(run: Run, results: list[Result]) -> tuple[Status, str]:
    """The check's own status and message from its tests' results."""
    if run.problem:
        last_line = run.output.splitlines()[-1] if run.output else "no output"
        return Status.ERROR, f"testinfra could not run: {run.problem}: {last_line}"
    if not results:
        return Status.ERROR, "no testinfra tests were collected"
    bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
    names = ", ".join(r.check_id.split("/", 1)[1] for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
    if any(r.status is Status.ERROR for r in bad):
        return Status.ERROR, f"{len(bad)} of {len(results)} testinfra tests failed or could not run: {names}"
    if bad:
        return Status.FAIL, f"{len(bad)} of {len(results)} testinfra tests failed: {names}"
    skipped = sum(1 for r in results if r.status is Status.SKIP)
    return Status.PASS, f"{len(results) - skipped} testinfra tests passed, {skipped} skipped"


def run_controller_checks(transport: Transport, suite: Suite, root: str, variables: dict[str, Any],
                          cap: float) -> dict[str, list[Result]]:
    """The results of ``suite``'s testinfra checks on the sandbox ``transport`` reaches, by check id."""
    checks = [c for c in suite.checks if c.type in CONTROLLER_TYPES]
    if not checks:
        return {}
    try:
        connection = connection_for(transport.name, transport.host, transport.variables, root)
    except ConfigError as exc:
        return {c.id: [Result(c.id, Status.ERROR, str(exc), {}, 0, 0)] for c in checks}
    return {c.id: run_testinfra_check(c, suite.path.parent, connection, cap) for c in checks}
