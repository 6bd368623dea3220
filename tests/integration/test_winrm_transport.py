"""The WinRM transport against the WinRM test endpoint: real WS-Management, NTLM sealing or TLS.

The endpoint's shell is /bin/sh, so these hosts run the Python runner (``lab_runner: python``);
everything else (one shell per campaign, stdin in Send chunks, faults, retries) is what a
Windows host sees.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from winrm.protocol import Protocol

from lab.checks.delivery import RUNNER_GRACE, python_runner_payload, run_runner
from lab.checks.manifest import compile_suite, parse_results
from lab.errors import ConfigError, InfrastructureError
from lab.model import Check, Result, Status, Suite
from lab.transports.base import transport_class
from lab.transports.winrm.settings import STDIN_CHUNK
from lab.transports.winrm.transport import WinRMTransport
from tests.support.winrm_endpoint import WinRMEndpoint
from tests.support.winrm_lab import PASSWORD, USER, host_vars, raw_protocol

pytestmark = pytest.mark.integration


@pytest.fixture(params=["ntlm-http", "https-ca"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[WinRMEndpoint]:
    """NTLM with message encryption over HTTP, or HTTPS validated against the endpoint's CA."""
    with WinRMEndpoint(users={USER: PASSWORD}, https=request.param == "https-ca") as ep:
        yield ep


@pytest.fixture
def http_endpoint() -> Iterator[WinRMEndpoint]:
    with WinRMEndpoint(users={USER: PASSWORD}) as ep:
        yield ep


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A sandbox root holding what the checks look for."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_text("mode=test\n")
    return tmp_path


def check(check_id: str, kind: str, timeout: float = 10, **params: Any) -> Check:
    return Check(check_id, kind, params, timeout, 0)


def suite(name: str, *checks: Check) -> Suite:
    return Suite(name, Path(f"{name}.yml"), True, ("any",), checks)


SMOKE = suite(
    "smoke",
    check("config-present", "file", path="/etc/app.conf", contains="mode=test"),
    check("config-missing", "file", path="/etc/missing.conf"),
    check("says-hello", "command", command=["echo", "héllo wörld"], stdout="^héllo wörld$"),
)


def run(transport: WinRMTransport, s: Suite, root: Path, timeout: float = 60) -> list[Result]:
    return parse_results(s, run_runner(transport, compile_suite(s, str(root), {}), timeout))


def statuses(results: list[Result]) -> dict[str, Status]:
    return {r.check_id: r.status for r in results}


def opened(ep: WinRMEndpoint, **overrides: Any) -> WinRMTransport:
    transport = WinRMTransport("win-test", host_vars(ep, **overrides))
    transport.open()
    return transport


# -- end to end -----------------------------------------------------------------------------------


def test_runs_the_python_runner_and_returns_parsed_results(endpoint: WinRMEndpoint, root: Path) -> None:
    transport = transport_class("winrm", host="win-test")("win-test", host_vars(endpoint))
    assert isinstance(transport, WinRMTransport)
    with transport:
        results = run(transport, SMOKE, root)
    assert statuses(results) == {"config-present": Status.PASS, "config-missing": Status.FAIL,
                                 "says-hello": Status.PASS}
    assert results[1].message == "/etc/missing.conf does not exist"
    assert results[2].evidence["stdout"] == "héllo wörld\n"  # UTF-8 end to end
    counters = endpoint.counters
    assert (counters.shells_created, counters.shells_deleted, counters.commands_run) == (1, 1, 1)
    assert counters.encrypted_messages == (0 if endpoint.https else counters.http_requests - 3)  # all but the handshake
    assert endpoint.shell_ids() == []


def test_one_shell_serves_every_suite_of_the_campaign(endpoint: WinRMEndpoint, root: Path) -> None:
    with opened(endpoint) as transport:
        for _ in range(4):
            assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        assert endpoint.counters.shells_created == 1
        assert len(endpoint.shell_ids()) == 1
    counters = endpoint.counters
    assert (counters.shells_created, counters.commands_run, counters.shells_deleted) == (1, 4, 1)
    assert counters.connections == 1 and counters.logons_ntlm == 1  # one logon for the whole session


def test_a_200_kb_manifest_goes_through_stdin_in_chunks(
    http_endpoint: WinRMEndpoint, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = suite("big", *(check(f"config-{i:04d}", "file", path="/etc/app.conf",
                               matches="^mode=(test|" + "z" * 150 + ")$") for i in range(1200)))
    sends: list[tuple[int, bool]] = []
    commands: list[str] = []
    real_send, real_command = Protocol.send_command_input, Protocol.run_command

    def spy_send(self: Protocol, shell_id: str, command_id: str, data: bytes, end: bool = False) -> None:
        sends.append((len(data), end))
        real_send(self, shell_id, command_id, data, end)

    def spy_command(self: Protocol, shell_id: str, command: str, *args: Any, **kwargs: Any) -> str:
        commands.append(command)
        return real_command(self, shell_id, command, *args, **kwargs)

    monkeypatch.setattr(Protocol, "send_command_input", spy_send)
    monkeypatch.setattr(Protocol, "run_command", spy_command)
    manifest = compile_suite(big, str(root), {})
    # what run_runner sends over WinRM: the runner's source only, no precompiled code
    payload = python_runner_payload(dict(manifest, deadline=60 + RUNNER_GRACE), precompiled=False)
    assert len(payload) > 200_000
    with opened(http_endpoint) as transport:
        output = run_runner(transport, manifest, 60)
    results = parse_results(big, output)
    assert len(results) == 1200 and {r.status for r in results} == {Status.PASS}
    assert [size for size, _ in sends] == [STDIN_CHUNK] * (len(payload) // STDIN_CHUNK) + [len(payload) % STDIN_CHUNK]
    assert [end for _, end in sends] == [False] * (len(sends) - 1) + [True]
    assert len(sends) == math.ceil(len(payload) / STDIN_CHUNK) >= 2
    assert len(commands) == 1 and len(commands[0]) < 1000  # the command line is only the bootstrap


# -- timeouts ---------------------------------------------------------------------------------------


def test_operation_timeouts_while_a_slow_command_runs_are_normal(http_endpoint: WinRMEndpoint, root: Path) -> None:
    slow = suite("slow", check("slow-but-fine", "command", command=["sh", "-c", "sleep 3; echo done"],
                               stdout="^done$"))
    with opened(http_endpoint, ansible_winrm_operation_timeout_sec=1, ansible_winrm_read_timeout_sec=3) as transport:
        results = run(transport, slow, root)
    assert statuses(results) == {"slow-but-fine": Status.PASS}
    assert http_endpoint.counters.faults >= 2  # w:TimedOut answers while the command ran


def test_the_suite_timeout_terminates_the_runner(http_endpoint: WinRMEndpoint, root: Path) -> None:
    # A server that accepts and never answers: the runner's own process waits on it (an http check reads
    # in the runner, not in a child) far past the suite's 2 s.
    silent = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    stuck = suite("stuck", check("first", "file", path="/etc/app.conf"),
                  check("blocks", "http", timeout=120, url=url))
    try:
        with opened(http_endpoint) as transport:
            output = run_runner(transport, compile_suite(stuck, str(root), {}), 2)
            assert output.timed_out
            results = parse_results(stuck, output)
            assert statuses(results) == {"first": Status.PASS, "blocks": Status.ERROR}
            # WS-Man's OperationTimeout is whole seconds, so the deadline holds to within a second
            assert re.fullmatch("the suite timed out after [23]s before this check reported", results[1].message)
            connection, _ = silent.accept()
            connection.settimeout(10)
            assert connection.recv(65536).startswith(b"GET / HTTP/1.1")
            while connection.recv(65536):  # the runner that held the connection is gone: end of stream
                pass
            connection.close()
            assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS  # the shell lives on
    finally:
        silent.close()
    assert http_endpoint.counters.shells_created == 1


# -- quota, lost shells, readiness ------------------------------------------------------------------


def test_shell_quota_gets_one_retry_and_succeeds_when_a_shell_frees_up(root: Path) -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, max_shells_per_user=1) as ep:
        other = raw_protocol(ep)
        held = other.open_shell()
        freed = threading.Timer(0.5, other.close_shell, args=(held,))
        freed.start()
        with opened(ep, lab_winrm_retry_delay=1.5) as transport:
            assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        freed.join()
        counters = ep.counters
        assert (counters.shells_created, counters.faults, transport.shells_opened) == (2, 1, 1)


def test_shell_quota_still_full_after_the_retry_is_an_infrastructure_error() -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, max_shells_per_user=1) as ep:
        other = raw_protocol(ep)
        held = other.open_shell()
        transport = WinRMTransport("win-busy", host_vars(ep, lab_winrm_retry_delay=0.5))
        with pytest.raises(InfrastructureError) as error:
            transport.open()
        message = str(error.value)
        assert message.startswith(f"host win-busy: {ep.url}: no shell available: {USER} is at the host's "
                                  "MaxShellsPerUser quota, also on the retry 0.5s later")
        assert PASSWORD not in message
        assert ep.counters.faults == 2  # the first try and the one retry
        transport.close()
        other.close_shell(held)


def test_a_shell_dropped_mid_run_is_retried_once_on_a_fresh_shell(http_endpoint: WinRMEndpoint, root: Path) -> None:
    slow = suite("slow", check("config-present", "file", path="/etc/app.conf"),
                 check("slow-but-fine", "command", command=["sh", "-c", "sleep 2; echo done"], stdout="^done$"))
    with opened(http_endpoint) as transport:
        threading.Timer(0.8, http_endpoint.drop_shell).start()
        results = run(transport, slow, root)
        assert statuses(results) == {"config-present": Status.PASS, "slow-but-fine": Status.PASS}
        assert transport.shells_opened == 2
        assert len(http_endpoint.shell_ids()) == 1
    assert (http_endpoint.counters.shells_created, http_endpoint.counters.commands_run) == (2, 2)


def test_a_shell_out_of_operations_is_replaced_by_a_fresh_one(root: Path) -> None:
    # WinRS never gives back a command's operation; the host then refuses more (as Ansible knows)
    with WinRMEndpoint(users={USER: PASSWORD}, max_operations_per_shell=2) as ep, opened(ep) as transport:
        for _ in range(3):
            assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        assert (ep.counters.shells_created, ep.counters.commands_run, transport.shells_opened) == (2, 3, 2)
        assert len(ep.shell_ids()) == 1  # the exhausted shell was deleted


def test_a_shell_lost_again_on_the_retry_is_an_infrastructure_error(http_endpoint: WinRMEndpoint, root: Path) -> None:
    slow = suite("slow", check("slow", "command", command=["sleep", "3"]))
    stop = threading.Event()

    def keep_dropping() -> None:
        while not stop.wait(0.4):
            http_endpoint.drop_shell()

    dropper = threading.Thread(target=keep_dropping)
    transport = opened(http_endpoint)
    dropper.start()
    try:
        with pytest.raises(InfrastructureError) as error:
            run_runner(transport, compile_suite(slow, str(root), {}), 30)
    finally:
        stop.set()
        dropper.join()
        transport.close()
    assert str(error.value).startswith(f"host win-test: the WinRM shell at {http_endpoint.url} was lost twice")
    assert transport.shells_opened == 2


def test_waits_with_backoff_for_a_host_that_refuses_connections(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lab.transports.winrm.transport")
    with WinRMEndpoint(users={USER: PASSWORD}, refuse_connections_for=2) as ep, opened(ep) as transport:
        assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        assert ep.counters.shells_created == 1
    waits = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    # each refused try waits twice as long as the one before (0.25s first, at most 2s)
    assert waits and waits == [f"host win-test: not ready (connection refused or reset); next try in {pause:.2f}s"
                               for pause in (0.25, 0.5, 1.0, 2.0, 2.0, 2.0)[:len(waits)]]


def test_the_wait_for_a_host_is_bounded() -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, refuse_connections_for=60) as ep:
        transport = WinRMTransport("win-down", host_vars(ep, lab_winrm_ready_timeout=1))
        with pytest.raises(InfrastructureError) as error:
            transport.open()
    assert str(error.value) == (
        f"host win-down: {ep.url} did not accept WinRM connections within 1s (last: connection refused or "
        "reset); is the host up, and are ansible_host/ansible_port right? (lab_winrm_ready_timeout sets the wait)")


# -- security settings -----------------------------------------------------------------------------


def test_basic_over_http_is_refused_before_connecting(http_endpoint: WinRMEndpoint) -> None:
    with pytest.raises(ConfigError) as error:
        WinRMTransport("win-plain", host_vars(http_endpoint, ansible_winrm_transport="basic"))
    message = str(error.value)
    assert message.startswith("host win-plain: ansible_winrm_transport 'basic' (Basic authentication) over "
                              "ansible_winrm_scheme http would send the password in clear text")
    assert PASSWORD not in message
    assert http_endpoint.counters.http_requests == 0


def test_basic_over_https_with_a_validated_certificate_works(root: Path) -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, https=True) as ep, \
            opened(ep, ansible_winrm_transport="basic") as transport:
        assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        assert ep.counters.logons_basic >= 1


def test_certificate_validation_is_on_unless_ignore_is_set(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, https=True) as ep, \
            WinRMEndpoint(users={USER: PASSWORD}, https=True) as stranger:
        for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # trust is never taken from the environment
            monkeypatch.setenv(variable, str(ep.ca_path))
        for trust in (str(stranger.ca_path), None):  # the wrong CA; the system's default bundle
            transport = WinRMTransport("win-tls", host_vars(ep, ansible_winrm_ca_trust_path=trust))
            with pytest.raises(InfrastructureError) as error:
                transport.open()
            assert "TLS certificate validation failed against" in str(error.value)
            assert ep.counters.shells_created == 0
        with pytest.raises(ConfigError, match="ansible_winrm_server_cert_validation must be validate or ignore"):
            WinRMTransport("win-tls", host_vars(ep, ansible_winrm_ca_trust_path=None,
                                                ansible_winrm_server_cert_validation="no"))
        ignoring = host_vars(ep, ansible_winrm_ca_trust_path=None, ansible_winrm_server_cert_validation="ignore")
        with opened(ep, **ignoring) as transport:
            assert statuses(run(transport, SMOKE, root))["config-present"] is Status.PASS
        assert ep.counters.shells_created == 1


@pytest.mark.parametrize(("transport", "flag", "extra"), [("kerberos", "HAVE_KERBEROS", "kerberos"),
                                                        ("credssp", "HAVE_CREDSSP", "credssp")])
def test_a_missing_auth_library_is_named_before_connecting(
    http_endpoint: WinRMEndpoint, monkeypatch: pytest.MonkeyPatch, transport: str, flag: str, extra: str
) -> None:
    monkeypatch.setattr(f"winrm.transport.{flag}", False)
    with pytest.raises(ConfigError) as error:
        WinRMTransport("win-test", host_vars(http_endpoint, ansible_winrm_transport=transport))
    assert str(error.value).endswith(f"install it with `pip install 'pywinrm[{extra}]'`")
    assert http_endpoint.counters.http_requests == 0


def test_rejected_credentials_never_show_the_password(http_endpoint: WinRMEndpoint) -> None:
    wrong = PASSWORD + "-wrong"
    transport = WinRMTransport("win-test", host_vars(http_endpoint, ansible_password=wrong))
    with pytest.raises(InfrastructureError) as error:
        transport.open()
    assert str(error.value) == (f"host win-test: {http_endpoint.url}: the credentials of {USER} were rejected "
                                "(ntlm authentication)")
    assert wrong not in repr(transport.settings) and PASSWORD not in repr(transport.settings)


def test_a_command_that_vanishes_is_not_taken_for_a_lost_shell(http_endpoint: WinRMEndpoint, root: Path) -> None:
    # A host answers an unknown CommandId with the shell-not-found code, but without naming the shell:
    # the command is gone, the shell is not, and a rerun on a fresh shell would prove nothing.
    slow = suite("slow", check("slow", "command", command=["sleep", "3"]))

    def drop_the_command() -> None:
        (shell_id, command_id), = http_endpoint.command_ids()
        assert http_endpoint.drop_command(shell_id, command_id)

    transport = opened(http_endpoint)
    threading.Timer(0.8, drop_the_command).start()
    try:
        with pytest.raises(InfrastructureError) as error:
            run_runner(transport, compile_suite(slow, str(root), {}), 30)
        assert len(http_endpoint.shell_ids()) == 1  # the shell survived; the transport keeps it
    finally:
        transport.close()
    message = str(error.value)
    assert message.startswith("host win-test: Receive: the host no longer knows command ")
    assert "while shell " in message and "is still open" in message
    assert "lost twice" not in message
    assert (transport.shells_opened, http_endpoint.counters.commands_run) == (1, 1)
