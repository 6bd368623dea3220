"""The checks of ``benchmarks.ssh_vs_testinfra`` mean the same thing to the lab and to testinfra.

The benchmark needs root and namespace sandboxes; this test does not. It loads the lab suite the
benchmark writes, renders the testinfra module the benchmark generates, and has both judge the
same 50 checks on this very host (the lab's runner through the local transport, the generated
test functions against testinfra's ``local://`` backend, with this host's name and a loopback
socket standing in for the sandbox's): they must agree check by check, whatever this host is.
"""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra  # a declared test dependency (pyproject's dev extra)

from benchmarks.ssh_vs_testinfra_checks import checks, harness_module, module_for_testinfra, write_lab_suite
from lab.checks.delivery import run_runner
from lab.checks.manifest import compile_suite, parse_results, suite_budget
from lab.model import Status
from lab.transports.local import LocalTransport

pytestmark = pytest.mark.integration


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A TCP port listening on 127.0.0.1 only, like a sandbox's sshd."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_suite_loads_as_a_lab_suite_and_the_module_has_one_test_per_check(tmp_path: Path) -> None:
    suite = write_lab_suite(tmp_path / "suite.yml")
    assert [(c.id, c.type, c.params) for c in suite.checks] == checks()
    assert len(suite.checks) == 50 and len({c.id for c in suite.checks}) == 50
    assert {c.type for c in suite.checks} == {"file", "command", "package", "user", "group", "listening", "sysctl"}
    source = module_for_testinfra("sbx-1", "root@127.0.0.1:2222", {"ansible_port": 2222, "sandbox_name": "sbx-1"})
    tree = ast.parse(source)
    tests = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert tests == [f"test_{check_id}" for check_id, _, _ in checks()]
    assert "${" not in source and "host.socket('tcp://127.0.0.1:2222')" in source
    assert "testinfra_hosts = ['root@127.0.0.1:2222']" in source
    harness = [n.name for n in ast.parse(harness_module("sbx-1")).body if isinstance(n, ast.FunctionDef)]
    assert harness == tests


def test_lab_and_testinfra_agree_on_every_check_on_this_host(tmp_path: Path, loopback_port: int) -> None:
    variables = {"ansible_port": loopback_port, "sandbox_name": socket.gethostname()}
    suite = write_lab_suite(tmp_path / "suite.yml")
    with LocalTransport("localhost", {}) as transport:
        output = run_runner(transport, compile_suite(suite, "/", variables), suite_budget(suite, 120.0))
    lab = {r.check_id: r for r in parse_results(suite, output)}
    assert {r.status for r in lab.values()} <= {Status.PASS, Status.FAIL}, \
        [(r.check_id, r.message) for r in lab.values() if r.status not in (Status.PASS, Status.FAIL)]

    namespace: dict[str, Any] = {}
    exec(compile(module_for_testinfra("this host", "local://", variables), "generated.py", "exec"), namespace)
    host = testinfra.get_host("local://")
    disagree = []
    for check_id, _, _ in checks():
        try:
            namespace[f"test_{check_id}"](host)
            theirs = True
        except AssertionError:
            theirs = False
        if theirs is not (lab[check_id].status is Status.PASS):
            disagree.append((check_id, lab[check_id].status.value, lab[check_id].message, theirs))
    assert disagree == []
    assert lab["c47_sshd_loopback"].status is Status.PASS
    assert lab["c48_sshd_not_on_all_addresses"].status is Status.PASS
