"""The testinfra check type for real: a pytest-testinfra file written as testinfra's documentation
writes one runs as a suite on a namespace sandbox over SSH (the lab's key and pinned known_hosts,
one result per test), and on a local sandbox inside a whole campaign, where its results are
stored, reported in JUnit and gated like any other check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.checks.manifest import run_suite
from lab.config.labfile import load_suite
from lab.model import SandboxSpec, Status
from lab.sandboxes.namespace.provider import NamespaceProvider
from lab.transports.ssh import SSHTransport
from tests.support.labfiles import copy_default_lab, require_root_and_sshd, run_lab

pytestmark = pytest.mark.integration

# testinfra's documentation opens with test_passwd_file, test_nginx_is_installed and
# test_nginx_running_and_enabled; the same three, for what every sandbox has: OpenSSH's server.
DOCS_STYLE = '''\
def test_passwd_file(host):
    passwd = host.file("/etc/passwd")
    assert passwd.contains("root")
    assert passwd.user == "root"
    assert passwd.group == "root"
    assert passwd.mode == 0o644


def test_openssh_server_is_installed(host):
    sshd = host.package("openssh-server")
    assert sshd.is_installed
    assert sshd.version.startswith("1:")


def test_sshd_running(host):
    assert host.process.filter(comm="sshd")


def test_hostname_is_the_sandboxs(host):
    assert host.check_output("hostname") == "ti-sbx"


def test_no_telnet(host):
    assert host.package("telnetd").is_installed, "telnetd is not installed"
'''

SUITE = """suite: infra
platforms: [debian-12]
timeout: 60
checks:
  - id: passwd-present
    type: file
    path: /etc/passwd
  - id: docs
    type: testinfra
    files: [tests/test_docs.py]
"""


def test_a_testinfra_file_runs_as_a_suite_on_a_namespace_sandbox(tmp_path: Path) -> None:
    require_root_and_sshd()
    (tmp_path / "suites" / "tests").mkdir(parents=True)
    (tmp_path / "suites" / "tests" / "test_docs.py").write_text(DOCS_STYLE)
    (tmp_path / "suites" / "infra.yml").write_text(SUITE)
    suite = load_suite(tmp_path / "suites" / "infra.yml")
    provider = NamespaceProvider(tmp_path / "state")
    spec = SandboxSpec("ti-sbx", "debian-12", "namespace", {})
    try:
        handle = provider.reset(spec)
        with SSHTransport(spec.name, handle.facts) as transport:
            results = run_suite(transport, suite, handle.root, {**handle.facts}, 120.0)
        log = provider.sshd_log(spec).read_text()
    finally:
        provider.destroy(spec)
    assert [(r.check_id, r.status) for r in results] == [
        ("passwd-present", Status.PASS),
        ("docs", Status.FAIL),
        ("docs/tests.test_docs::test_passwd_file", Status.PASS),
        ("docs/tests.test_docs::test_openssh_server_is_installed", Status.PASS),
        ("docs/tests.test_docs::test_sshd_running", Status.PASS),
        ("docs/tests.test_docs::test_hostname_is_the_sandboxs", Status.PASS),
        ("docs/tests.test_docs::test_no_telnet", Status.FAIL),
    ]
    docs = results[1]
    assert docs.message == "1 of 5 testinfra tests failed: tests.test_docs::test_no_telnet"
    assert docs.evidence["host"] == "ssh://ti-sbx"
    assert results[-1].message.startswith("AssertionError: telnetd is not installed")
    # testinfra reached the sandbox with the lab's own key, over the pinned host key
    assert re.search(r"Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2", log)


CAMPAIGN_TESTS = '''\
import os


def test_the_build_is_registered_in_the_sandbox(host):
    registry = host.file(os.environ["SANDBOX_ROOT"] + "/var/lib/lab/installed/care-planner.json")
    assert registry.exists
    assert registry.contains('"version": "2.0.0"')


def test_release_notes_are_shipped(host):
    notes = host.file(os.environ["SANDBOX_ROOT"] + "/opt/care-planner/RELEASE-NOTES.lab-none")
    assert notes.exists, "no release notes in the sandbox"
'''


def test_testinfra_results_are_stored_reported_and_gated_in_a_campaign(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    root = lab_yml.parent
    (root / "test_suites" / "infra").mkdir()
    (root / "test_suites" / "infra" / "test_sandbox.py").write_text(CAMPAIGN_TESTS)
    (root / "test_suites" / "infra-tests.yml").write_text(
        "suite: infra-tests\nplatforms: [debian-12]\nchecks:\n"
        "  - id: sandbox\n    type: testinfra\n    timeout: 120\n    files: [infra/test_sandbox.py]\n")
    text = lab_yml.read_text()
    suites = "suites: [care-planner-smoke, portfolio-compat, care-planner-hygiene"
    assert f"{suites}]" in text
    lab_yml.write_text(text.replace(f"{suites}]", f"{suites}, infra-tests]"))
    assert run_lab(lab_yml, "validate").returncode == 0
    assert run_lab(lab_yml, "build", "care-planner@2.0.0").returncode == 0
    ran = run_lab(lab_yml, "run", "care-planner@2.0.0")
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert ("mandatory checks: 2 mandatory check(s) failed: infra-tests/sandbox on ts-sbx-01; "
            "infra-tests/sandbox/infra.test_sandbox::test_release_notes_are_shipped on ts-sbx-01\n") in ran.stdout, \
        ran.stdout
    junit = run_lab(lab_yml, "report", "latest", "--format", "junit", "-o", "-").stdout
    assert 'name="sandbox/infra.test_sandbox::test_the_build_is_registered_in_the_sandbox"' in junit
    assert 'name="sandbox/infra.test_sandbox::test_release_notes_are_shipped"' in junit
    shown = run_lab(lab_yml, "show", "latest").stdout
    assert "sandbox/infra.test_sandbox::test_release_notes_are_shipped" in shown
    assert "no release notes in the sandbox" in shown
