"""The testinfra check type: existing pytest-testinfra files run by the controller, one result per test.

Runs real pytest with pytest-testinfra's ``local`` backend against this machine (a local sandbox);
the ssh backend against a namespace sandbox is in tests/integration/test_testinfra_check_type.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.checks.manifest import run_suite
from lab.checks.testinfra_suite import Connection, connection_for, ssh_config_text, without_host
from lab.errors import ConfigError
from lab.model import Check, Result, Status, Suite
from lab.transports.local import LocalTransport
from lab.transports.ssh import SSHSettings

TESTS = '''\
import pytest


def test_passwd_file(host):
    passwd = host.file("/etc/passwd")
    assert passwd.contains("root")
    assert passwd.user == "root"
    assert passwd.mode == 0o644


def test_no_such_file(host):
    assert host.file("/etc/lab-no-such-file").exists, "the file is not there"


@pytest.mark.parametrize("name", ["root", "lab-no-such-user"])
def test_user(host, name):
    assert host.user(name).exists


@pytest.mark.skip(reason="not on this platform")
def test_skipped(host):
    pass


def test_sandbox_root(host):
    import os
    assert os.environ.get("SANDBOX_ROOT") == "{root}"
'''


def suite_of(directory: Path, *checks: Check) -> Suite:
    return Suite("ti", directory / "suite.yml", True, ("debian-12",), checks)


def ti_check(check_id: str, *files: str, retries: int = 0, timeout: float = 60.0, skip: str | None = None) -> Check:
    return Check(check_id, "testinfra", {"files": list(files)}, timeout, retries, skip=skip)


def by_id(results: list[Result]) -> dict[str, Result]:
    return {r.check_id: r for r in results}


def test_each_test_is_one_result_beside_the_checks_own(tmp_path: Path) -> None:
    root = tmp_path / "sbx"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "test_host.py").write_text(TESTS.replace("{root}", str(root)))
    suite = suite_of(tmp_path,
                     Check("first", "file", {"path": "/etc/passwd"}, 10.0, 0),
                     ti_check("infra", "test_host.py"),
                     Check("last", "command", {"command": ["true"]}, 10.0, 0))
    with LocalTransport("ts-sbx-01", {}) as transport:
        results = run_suite(transport, suite, str(root), {}, 120.0)
    assert [r.check_id for r in results] == [
        "first", "infra", "infra/test_host::test_passwd_file", "infra/test_host::test_no_such_file",
        "infra/test_host::test_user[root]", "infra/test_host::test_user[lab-no-such-user]",
        "infra/test_host::test_skipped", "infra/test_host::test_sandbox_root", "last"]
    found = by_id(results)
    assert {k: r.status for k, r in found.items() if k.startswith("infra/")} == {
        "infra/test_host::test_passwd_file": Status.PASS, "infra/test_host::test_no_such_file": Status.FAIL,
        "infra/test_host::test_user[root]": Status.PASS, "infra/test_host::test_user[lab-no-such-user]": Status.FAIL,
        "infra/test_host::test_skipped": Status.SKIP, "infra/test_host::test_sandbox_root": Status.PASS}
    assert found["infra/test_host::test_no_such_file"].message.startswith("AssertionError: the file is not there")
    assert found["infra/test_host::test_skipped"].message == "not on this platform"
    own = found["infra"]
    assert (own.status, own.message) == (Status.FAIL, "2 of 6 testinfra tests failed: test_host::test_no_such_file, "
                                                      "test_host::test_user[lab-no-such-user]")
    assert own.evidence["host"] == "local://" and own.evidence["files"] == ["test_host.py"]
    assert own.evidence["counts"]["pass"] == 3
    assert (found["first"].status, found["last"].status) == (Status.PASS, Status.PASS)


def test_flaky_missing_broken_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "test_flaky.py").write_text(
        "from pathlib import Path\n\n"
        "def test_second_time(host):\n"
        f"    marker = Path({str(tmp_path / 'marker')!r})\n"
        "    first = not marker.exists()\n"
        "    marker.touch()\n"
        "    assert not first, 'first attempt fails'\n")
    (tmp_path / "test_broken.py").write_text("import lab_no_such_module\n")
    (tmp_path / "test_empty.py").write_text("X = 1\n")
    suite = suite_of(tmp_path, ti_check("flaky", "test_flaky.py", retries=1), ti_check("missing", "test_nope.py"),
                     ti_check("broken", "test_broken.py"), ti_check("empty", "test_empty.py"),
                     ti_check("skipped", "test_flaky.py", skip="not today"))
    with LocalTransport("localhost", {}) as transport:
        found = by_id(run_suite(transport, suite, "/", {}, 120.0))
    assert (found["flaky"].status, found["flaky"].attempts) == (Status.FLAKY, 2)
    second = found["flaky/test_flaky::test_second_time"]
    assert second.status is Status.FLAKY
    assert second.evidence["earlier_attempts"][0]["message"].startswith("AssertionError: first attempt fails")
    assert found["missing"].status is Status.ERROR
    assert found["missing"].message == f"check 'missing': testinfra file {tmp_path / 'test_nope.py'} does not exist"
    assert found["broken"].status is Status.ERROR
    assert found["broken/test_broken"].status is Status.ERROR  # the collection error, as pytest reports it
    assert "lab_no_such_module" in found["broken/test_broken"].message
    assert found["empty"].status is Status.ERROR
    assert found["empty"].message.startswith("testinfra could not run: pytest exited 5: no tests ran in ")
    assert (found["skipped"].status, found["skipped"].message) == (Status.SKIP, "not today")


def test_a_run_past_its_timeout_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow(host):\n    time.sleep(30)\n")
    with LocalTransport("localhost", {}) as transport:
        found = by_id(run_suite(transport, suite_of(tmp_path, ti_check("slow", "test_slow.py", timeout=3)), "/", {},
                                120.0))
    assert found["slow"].status is Status.ERROR
    assert found["slow"].message.startswith("testinfra could not run: pytest did not finish within 3s")


def test_the_ssh_config_reaches_the_sandbox_as_the_transport_does() -> None:
    variables = {"ansible_host": "127.0.0.1", "ansible_port": 2222, "ansible_user": "root",
                 "ansible_ssh_private_key_file": "/lab/.lab/ssh/id_ed25519",
                 "ansible_ssh_common_args":
                     "-o UserKnownHostsFile=/lab/.lab/ssh/known_hosts -o StrictHostKeyChecking=yes"}
    connection = connection_for("ssh", "ts-sbx-01", variables, "/")
    assert (connection.hosts, connection.host_id, connection.env) == ("ssh://ts-sbx-01", "ssh://ts-sbx-01", {})
    assert connection.ssh_config == (
        "Host ts-sbx-01\n    HostName 127.0.0.1\n    BatchMode yes\n    StrictHostKeyChecking yes\n"
        "    ConnectTimeout 10\n    ControlPath %%CONTROL%%/master\n    Port 2222\n    User root\n"
        "    IdentityFile /lab/.lab/ssh/id_ed25519\n    IdentitiesOnly yes\n"
        "    UserKnownHostsFile /lab/.lab/ssh/known_hosts\n    StrictHostKeyChecking yes\n")
    assert connection_for("local", "ts-sbx-01", {}, "/srv/sbx") == \
        Connection("local://", "local", None, None, {"SANDBOX_ROOT": "/srv/sbx"})
    with pytest.raises(ConfigError, match="testinfra checks run over the ssh or local transport"):
        connection_for("winrm", "win-01", {}, "/")
    with pytest.raises(ConfigError, match="takes -o Key=Value options only"):
        ssh_config_text("h", SSHSettings.from_variables("h", {"ansible_ssh_common_args": "-J jump.example"}))
    with pytest.raises(ConfigError, match="StrictHostKeyChecking=no is refused"):
        connection_for("ssh", "h", {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, "/")


@pytest.mark.parametrize(("name", "expected"), [
    ("test_a[ssh://ts-sbx-01]", "test_a"),
    ("test_a[ssh://ts-sbx-01-nginx]", "test_a[nginx]"),
    ("test_a[nginx-ssh://ts-sbx-01]", "test_a[nginx]"),
    ("test_a[x-ssh://ts-sbx-01-y]", "test_a[x-y]"),
    ("test_a", "test_a"),
])
def test_test_names_leave_the_host_out(name: str, expected: str) -> None:
    assert without_host(name, "ssh://ts-sbx-01") == expected
