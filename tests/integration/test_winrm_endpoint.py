"""Fidelity tests of the WinRM test endpoint in ``tests/winrm_endpoint``.

Real clients (pywinrm, pypsrp, ``ansible -m raw``) run commands against it, recorded
requests of real Windows hosts are replayed and our responses compared structurally with
the recorded ones, and the fault behaviour (timeouts, unknown shells, quotas, dropped
shells, refused connections, channel binding) is checked against real-host codes.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import spnego
import winrm
import yaml
from pypsrp.client import Client
from pypsrp.exceptions import WinRMTransportError
from pypsrp.exceptions import WSManFaultError as PsrpFault
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan
from spnego.channel_bindings import GssChannelBindings
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError
from winrm.protocol import Protocol

from tests.support.labfiles import REFERENCE, needs_reference
from tests.support.winrm_endpoint import WinRMEndpoint, compare_envelopes
from tests.support.winrm_lab import ansible_ready_env

pytestmark = pytest.mark.integration

USER, PASSWORD = "user", "S3cret pass"
RECORDINGS = REFERENCE / "winrm-recordings"
SHELL_NOT_FOUND, TIMED_OUT = 2150858843, 2150858793
QUOTA_SHELLS, QUOTA_OPERATIONS = 2150859173, 2150859174


@pytest.fixture
def endpoint() -> Iterator[WinRMEndpoint]:
    with WinRMEndpoint(users={USER: PASSWORD}) as ep:
        yield ep


@pytest.fixture
def https_endpoint() -> Iterator[WinRMEndpoint]:
    with WinRMEndpoint(users={USER: PASSWORD}, https=True) as ep:
        yield ep


def session(ep: WinRMEndpoint, transport: str = "ntlm", **kwargs: Any) -> winrm.Session:
    """A pywinrm session; over HTTPS it validates the endpoint's certificate against its CA."""
    if ep.https:
        kwargs.update(server_cert_validation="validate", ca_trust_path=str(ep.ca_path))
    else:
        kwargs.setdefault("server_cert_validation", "ignore")
    return winrm.Session(ep.url, auth=(USER, PASSWORD), transport=transport, **kwargs)


def protocol(ep: WinRMEndpoint, **kwargs: Any) -> Protocol:
    kwargs.setdefault("server_cert_validation", "ignore")
    return Protocol(ep.url, transport="ntlm", username=USER, password=PASSWORD, **kwargs)


def wsman(ep: WinRMEndpoint, auth: str = "ntlm") -> WSMan:
    return WSMan("127.0.0.1", port=ep.port, username=USER, password=PASSWORD, ssl=False, auth=auth)


def refused(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


# -- real clients ---------------------------------------------------------------------------------


def test_pywinrm_ntlm_with_message_encryption_over_http(endpoint: WinRMEndpoint) -> None:
    s = session(endpoint)
    first = s.run_cmd("echo", ["hi"])
    second = s.run_cmd("printf out; printf err >&2; exit 7")
    assert (first.status_code, first.std_out, first.std_err) == (0, b"hi\n", b"")
    assert (second.status_code, second.std_out, second.std_err) == (7, b"out", b"err")
    counters = endpoint.counters
    # per run_cmd: 2 handshake legs + 1 blank POST + Create, Command, Receive, Signal, Delete;
    # pywinrm closes its HTTP session with each shell, so each run_cmd uses one connection.
    assert counters.http_requests == 16
    assert counters.encrypted_messages == 10
    assert counters.connections == 2
    assert (counters.shells_created, counters.commands_run, counters.shells_deleted) == (2, 2, 2)
    assert (counters.logons_ntlm, counters.logons_spnego, counters.logons_basic) == (2, 0, 0)
    assert endpoint.shell_ids() == []


def test_pywinrm_ntlm_over_https_validates_cert_and_binds_channel() -> None:
    # "strict": the acceptor requires the tls-server-end-point binding, so success proves
    # the client sent it and it matched the generated certificate.
    with WinRMEndpoint(users={USER: PASSWORD}, https=True, channel_binding="strict") as ep:
        result = session(ep).run_cmd("echo tls")
        assert (result.status_code, result.std_out) == (0, b"tls\n")
        assert ep.counters.encrypted_messages == 0  # TLS protects the body; no NTLM sealing
        with pytest.raises(InvalidCredentialsError):
            session(ep, send_cbt=False).run_cmd("echo no-binding")


def test_channel_binding_absent_is_accepted_when_relaxed(https_endpoint: WinRMEndpoint) -> None:
    result = session(https_endpoint, send_cbt=False).run_cmd("echo relaxed")
    assert result.std_out == b"relaxed\n"


def _ntlm_over_tls(ep: WinRMEndpoint, end_point_hash: bytes) -> int:
    """Authenticate with raw NTLM over TLS using the given certificate hash; final HTTP status."""
    bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + end_point_hash)
    client = spnego.client(USER, PASSWORD, protocol="ntlm", channel_bindings=bindings)
    context = ssl.create_default_context(cafile=str(ep.ca_path))
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=context, timeout=10)
    try:
        token = client.step()
        assert token is not None
        conn.request("POST", "/wsman", body=b"", headers={"Authorization": "NTLM " + base64.b64encode(token).decode()})
        challenge = conn.getresponse()
        challenge.read()
        assert challenge.status == 401
        server_token = base64.b64decode(challenge.getheader("WWW-Authenticate", "").split(" ", 1)[1])
        token = client.step(server_token)
        assert token is not None
        conn.request("POST", "/wsman", body=b"", headers={"Authorization": "NTLM " + base64.b64encode(token).decode()})
        final = conn.getresponse()
        final.read()
        return final.status
    finally:
        conn.close()


def test_channel_binding_mismatch_is_rejected(https_endpoint: WinRMEndpoint) -> None:
    assert https_endpoint.tls is not None
    assert _ntlm_over_tls(https_endpoint, b"\x01" * 32) == 401
    assert _ntlm_over_tls(https_endpoint, https_endpoint.tls.end_point_hash()) == 200


def test_pywinrm_basic_over_https(https_endpoint: WinRMEndpoint) -> None:
    result = session(https_endpoint, transport="basic").run_cmd("echo basic; exit 3")
    assert (result.status_code, result.std_out) == (3, b"basic\n")
    assert https_endpoint.counters.logons_basic == 5  # Basic is checked on each of the 5 requests
    unauthenticated = requests.post(https_endpoint.url, data=b"", verify=str(https_endpoint.ca_path), timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == 'Negotiate, Basic realm="WSMAN"'


def test_basic_over_http_is_refused_without_offering_basic(endpoint: WinRMEndpoint) -> None:
    response = requests.post(endpoint.url, data=b"<x/>", auth=(USER, PASSWORD), timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Negotiate"
    with pytest.raises(InvalidCredentialsError):
        session(endpoint, transport="basic").run_cmd("echo never")
    assert endpoint.counters.shells_created == 0


def test_plaintext_soap_over_http_needs_allow_unencrypted(endpoint: WinRMEndpoint) -> None:
    with pytest.raises(InvalidCredentialsError):
        session(endpoint, message_encryption="never").run_cmd("echo plain")
    with WinRMEndpoint(users={USER: PASSWORD}, allow_unencrypted=True) as ep:
        result = session(ep, message_encryption="never").run_cmd("echo plain")
        assert result.std_out == b"plain\n"
        assert ep.counters.encrypted_messages == 0


def test_ntlm_scheme_and_domain_accounts() -> None:
    account = "LAB\\" + USER
    with WinRMEndpoint(users={account: PASSWORD}, auth_schemes=("NTLM",)) as ep:
        assert requests.post(ep.url, data=b"", timeout=10).headers["WWW-Authenticate"] == "NTLM"
        wrong = winrm.Session(ep.url, auth=(account, "wrong"), transport="ntlm", server_cert_validation="ignore")
        with pytest.raises(InvalidCredentialsError):
            wrong.run_cmd("echo never")
        manager = WSMan("127.0.0.1", port=ep.port, username=account, password=PASSWORD, ssl=False, auth="ntlm")
        try:
            with WinRS(manager) as shell:
                # the shell's Owner is the authenticated domain account, as on Windows: in the
                # Create response and in the shell's state read back with a WS-Man Get
                assert shell.owner == "LAB\\user"
                assert shell._get_shell()["Owner"] == "LAB\\user"
        finally:
            manager.close()
        assert (ep.counters.shells_created, ep.counters.logons_ntlm) == (1, 1)


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_pypsrp_client_execute_cmd(endpoint: WinRMEndpoint, auth: str) -> None:
    client = Client("127.0.0.1", port=endpoint.port, username=USER, password=PASSWORD, ssl=False, auth=auth)
    try:
        assert client.execute_cmd("echo hi; echo oops >&2; exit 4") == ("hi\n", "oops\n", 4)
        assert client.execute_cmd("echo $GREETING", environment={"GREETING": "hello"}) == ("hello\n", "", 0)
    finally:
        client.close()
    counters = endpoint.counters
    assert (counters.shells_created, counters.commands_run, counters.shells_deleted) == (2, 2, 2)
    assert counters.connections == 1  # HTTP/1.1 keep-alive: one authenticated connection
    # 2 handshake legs, a blank POST, then Create, Command, Receive, Signal, Delete twice, sealed
    assert (counters.http_requests, counters.encrypted_messages) == (13, 10)
    # pypsrp's "ntlm" sends raw NTLM tokens; "negotiate" wraps NTLM in SPNEGO (no Kerberos here)
    assert (counters.logons_ntlm, counters.logons_spnego) == ((1, 0) if auth == "ntlm" else (0, 1))


def test_pypsrp_winrs_process_api(endpoint: WinRMEndpoint, tmp_path: Path) -> None:
    manager = wsman(endpoint, auth="negotiate")
    try:
        with WinRS(manager, environment={"GREETING": "hello world"}, working_directory=str(tmp_path)) as shell:
            proc = Process(shell, 'cat; echo "$GREETING from $(pwd)"')
            proc.begin_invoke()
            proc.send(b"line1\n", end=False)
            proc.send(b"line2\n", end=True)
            proc.end_invoke()
            assert (proc.rc, proc.stdout, proc.stderr) == (
                0,
                f"line1\nline2\nhello world from {tmp_path}\n".encode(),
                b"",
            )
            state = shell._get_shell()
            assert (state["ShellId"], state["Owner"], state["WorkingDirectory"]) == (
                shell.id,
                USER,
                str(tmp_path),
            )

            for signal_code, expected_rc in ((SignalCode.TERMINATE, 137), (SignalCode.CTRL_C, 130)):
                long_running = Process(shell, "sleep 30")
                long_running.begin_invoke()
                long_running.signal(signal_code)
                long_running.end_invoke()
                assert long_running.rc == expected_rc  # killed by the signal, not ended by the sleep
    finally:
        manager.close()
    assert endpoint.counters.commands_run == 3
    assert endpoint.counters.connections == 1


def test_ansible_raw_module_over_winrm(tmp_path: Path) -> None:
    ansible = Path(sys.executable).parent / "ansible"
    assert ansible.exists(), f"ansible-core must be installed next to {sys.executable}"
    # Ansible wraps every command as "PowerShell ... -EncodedCommand <UTF-16LE base64>"; a tiny
    # PowerShell stand-in on the endpoint's PATH decodes it and runs it with /bin/sh.
    with WinRMEndpoint(users={USER: PASSWORD}, env=ansible_ready_env(tmp_path / "bin")) as ep:
        inventory = tmp_path / "hosts.ini"
        inventory.write_text(
            "[windows]\n"
            f"winhost ansible_host=127.0.0.1 ansible_port={ep.port} ansible_connection=winrm "
            f"ansible_user={USER} ansible_password='{PASSWORD}' ansible_winrm_transport=ntlm "
            "ansible_winrm_scheme=http ansible_winrm_server_cert_validation=ignore\n"
        )
        env = {
            **os.environ,
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
        }
        done = subprocess.run(
            [str(ansible), "-i", str(inventory), "winhost", "-m", "raw", "-a", "echo hi"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[:2] == ["winhost | CHANGED | rc=0 >>", "hi"]
        assert (ep.counters.shells_created, ep.counters.commands_run) == (1, 1)


# -- timing and faults ------------------------------------------------------------------------------


def test_receive_honours_operation_timeout(endpoint: WinRMEndpoint) -> None:
    result = session(endpoint, operation_timeout_sec=1, read_timeout_sec=3).run_cmd("sleep 3; echo done")
    assert (result.status_code, result.std_out) == (0, b"done\n")
    assert endpoint.counters.faults >= 2  # at least two w:TimedOut answers before the output

    p = protocol(endpoint, operation_timeout_sec=1, read_timeout_sec=3)
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, "sleep 2")
    faults = endpoint.counters.faults
    with pytest.raises(WinRMOperationTimeoutError):
        p.get_command_output_raw(shell_id, command_id)
    assert endpoint.counters.faults == faults + 1  # one w:TimedOut answer, before the command ended
    p.close_shell(shell_id)


def test_timed_out_fault_carries_real_host_code(endpoint: WinRMEndpoint) -> None:
    manager = wsman(endpoint)
    try:
        with WinRS(manager) as shell:
            proc = Process(shell, "sleep 2; echo late")
            proc.begin_invoke()
            with pytest.raises(PsrpFault) as fault:
                shell.receive("stdout stderr", proc.id, timeout=1)
            assert fault.value.code == TIMED_OUT
            assert fault.value.reason == (
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout."
            )
            proc.end_invoke()
            assert (proc.rc, proc.stdout) == (0, b"late\n")
    finally:
        manager.close()


def test_unknown_shell_is_invalid_selectors(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint)
    with pytest.raises(WSManFaultError) as fault:
        p.run_command("11111111-1111-1111-1111-111111111111", "echo hi")
    assert (fault.value.code, fault.value.fault_code, fault.value.fault_subcode) == (
        500,
        "s:Sender",
        "w:InvalidSelectors",
    )
    assert fault.value.wsman_fault_code == SHELL_NOT_FOUND
    assert fault.value.reason == (
        "The WS-Management service cannot process the request because the request contained invalid "
        "selectors for the resource. "
    )
    message = "ShellId 11111111-1111-1111-1111-111111111111 failed because the shell was not found"
    assert message in str(fault.value.response)
    p.transport.close_session()


def test_shell_quota_per_user() -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, max_shells_per_user=2) as ep:
        p = protocol(ep)
        first, _second = p.open_shell(), p.open_shell()
        with pytest.raises(WSManFaultError) as fault:
            p.open_shell()
        assert (fault.value.fault_subcode, fault.value.wsman_fault_code) == ("w:QuotaLimit", QUOTA_SHELLS)
        assert "This user is allowed a maximum number of 2 concurrent shells" in str(fault.value.response)
        p.close_shell(first, close_session=False)
        assert len(p.open_shell()) == 36
        assert len(ep.shell_ids()) == 2
        assert ep.counters.shells_created == 3
        p.transport.close_session()


def test_operation_quota_uses_the_wmi_error_form_ansible_recognises() -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, max_operations_per_shell=2) as ep:
        p = protocol(ep)
        shell_id = p.open_shell()
        for _ in range(2):
            command_id = p.run_command(shell_id, "true")
            assert p.get_command_output(shell_id, command_id) == (b"", b"", 0)
        with pytest.raises(WSManFaultError) as fault:
            p.run_command(shell_id, "true")
        assert fault.value.wmierror_code == QUOTA_OPERATIONS == 0x803381A6
        assert (fault.value.fault_code, fault.value.fault_subcode) == ("s:Receiver", "w:InternalError")
        p.close_shell(shell_id)
        assert ep.counters.commands_run == 2


def test_dropping_a_shell_mid_run_fails_the_pending_receive(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint, operation_timeout_sec=20, read_timeout_sec=30)
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, "sleep 10")
    errors: list[BaseException] = []

    def receive() -> None:
        try:
            p.get_command_output(shell_id, command_id)
        except BaseException as err:
            errors.append(err)

    waiter = threading.Thread(target=receive)
    waiter.start()
    time.sleep(0.3)
    assert endpoint.drop_shell(shell_id) == 1
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WSManFaultError)
    assert errors[0].wsman_fault_code == SHELL_NOT_FOUND
    assert endpoint.shell_ids() == []
    p.transport.close_session()


def test_connections_are_refused_while_the_host_boots() -> None:
    with WinRMEndpoint(users={USER: PASSWORD}, refuse_connections_for=1.0) as ep:
        assert refused(ep.port)
        assert ep.wait_listening(10)
        assert session(ep).run_cmd("echo up").std_out == b"up\n"


def test_reboot_drops_shells_and_refuses_connections_meanwhile(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint)
    shell_id = p.open_shell()
    p.transport.close_session()
    port = endpoint.port
    endpoint.reboot(downtime=0.5)
    assert refused(port)
    assert endpoint.wait_listening(10)
    assert endpoint.port == port
    fresh = protocol(endpoint)
    with pytest.raises(WSManFaultError) as fault:
        fresh.run_command(shell_id, "echo hi")
    assert fault.value.wsman_fault_code == SHELL_NOT_FOUND
    fresh.transport.close_session()
    assert session(endpoint).run_cmd("echo back").std_out == b"back\n"


# -- fidelity against recordings of real Windows hosts -------------------------------------------------

# The recorded commands are Windows ones; each is replaced by a /bin/sh equivalent.
SH_EQUIVALENTS = {
    "cmd.exe /c echo hi": r"printf 'hi\r\n'",
    "dir": "ls -a",
    "echo abc": "echo abc",
    # /bin/sh does not pass variables whose names are not identifiers on to its children,
    # so print the environment the shell process itself was started with.
    "set": r"tr '\0' '\n' < /proc/$$/environ",
    "cmd.exe /c set": r"tr '\0' '\n' < /proc/$$/environ",
    "powershell.exe (pwd).Path": "pwd",
    "powershell.exe -": r"""tr ';' '\n' | sed -n 's/^Write-Host "\(.*\)"$/\1/p'""",
    # pypsrp's other WinRS recordings (stderr and exit code, WINRS_SKIP_CMD_SHELL, code page 65001)
    "cmd.exe /c echo out && echo err>&2 && exit 1": r"printf 'out \r\n'; printf 'err \r\n' >&2; exit 1",
    "C:\\Windows\\system32\\WindowsPowerShell\\v1.0\\powershell.exe Write-Host hi": "echo hi",
    "powershell.exe Write-Host \u3053\u3093\u306b\u3061\u306f": "echo \u3053\u3093\u306b\u3061\u306f",
    "powershell.exe Write-Host hi; Start-Sleep 30; Write-Host hi again": "echo hi; sleep 30; echo hi again",
}
_SKIP_CMD_SHELL = '<wsman:Option Name="WINRS_SKIP_CMD_SHELL">True</wsman:Option>'
_COMMAND_LINE = re.compile(r"(<rsp:CommandLine[^>]*>)(.*?)</rsp:CommandLine>", re.S)
_RSP = "{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}"


def _sh_command_line(request: str, workdir: Path) -> str:
    """The request with its Windows command replaced by the /bin/sh equivalent. With WINRS_SKIP_CMD_SHELL a
    bare name is left as it is (Windows then fails it: no PATH search), and a path becomes an executable."""
    match = _COMMAND_LINE.search(request)
    if match is None:
        return request
    element = ET.fromstring(f'<rsp:CommandLine xmlns:rsp="{_RSP[1:-1]}">{match.group(2)}</rsp:CommandLine>')
    words = [element.findtext(f"{_RSP}Command") or ""] + [a.text or "" for a in element.findall(f"{_RSP}Arguments")]
    if _SKIP_CMD_SHELL in request:
        if "\\" not in words[0]:
            return request
        program = workdir / "skip-cmd-shell-program"
        program.write_text("#!/bin/sh\n" + SH_EQUIVALENTS[" ".join(words)] + "\n")
        program.chmod(0o755)
        shell_line = str(program)
    else:
        shell_line = SH_EQUIVALENTS[" ".join(words)]
    escaped = shell_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return request.replace(match.group(0), f"{match.group(1)}<rsp:Command>{escaped}</rsp:Command></rsp:CommandLine>")


def _ids(envelope: str) -> list[str]:
    root = ET.fromstring(envelope)
    return [el.text or "" for el in root.iter() if el.tag in (f"{_RSP}ShellId", f"{_RSP}CommandId")]


def _stdout(envelope: str) -> bytes:
    root = ET.fromstring(envelope)
    return b"".join(
        base64.b64decode(el.text) for el in root.iter(f"{_RSP}Stream") if el.get("Name") == "stdout" and el.text
    )


def _recordings() -> list[Path]:
    return sorted(RECORDINGS.glob("*.yml")) if RECORDINGS.is_dir() else []


needs_recordings = needs_reference("winrm-recordings", "the recordings of real Windows hosts (*.yml)",
                                   bool(_recordings()))


def _replay(endpoint: WinRMEndpoint, name: str, messages: list[dict[str, str]], workdir: Path) -> bytes:
    """Send each recorded request (with our ids and sh commands); assert each response matches.

    Returns the stdout the replayed commands produced.
    """
    transport = wsman(endpoint).transport
    recorded_to_ours: dict[str, str] = {}
    outputs: list[bytes] = []
    try:
        for number, message in enumerate(messages, start=1):
            request = message["request"]
            for recorded_id, our_id in recorded_to_ours.items():
                request = request.replace(recorded_id, our_id)
            request = _sh_command_line(request, workdir).replace(">C:\\Windows<", f">{workdir}<")
            try:
                response = transport.send(request.encode()).decode()
            except WinRMTransportError as err:
                assert err.code == 500, err
                response = err.response_text
            recorded_ids, our_ids = _ids(message["response"]), _ids(response)
            assert len(recorded_ids) == len(our_ids)
            recorded_to_ours.update(zip(recorded_ids, our_ids, strict=True))
            ours_to_recorded = {ours: recorded for recorded, ours in recorded_to_ours.items()}
            diffs = compare_envelopes(message["response"], response, ours_to_recorded)
            assert diffs == [], f"message {number} of {name}:\n" + "\n".join(diffs)
            outputs.append(_stdout(response))
    finally:
        transport.close()
    return b"".join(outputs)


@needs_recordings
@pytest.mark.parametrize("recording", _recordings(), ids=lambda p: p.stem)
def test_replay_matches_recorded_windows_responses(recording: Path, tmp_path: Path) -> None:
    messages = yaml.safe_load(recording.read_text())["messages"]
    # Some recorded hosts put a p:ActivityId in every response header, others never do.
    activity_ids = "<p:ActivityId>" in messages[0]["response"]
    with WinRMEndpoint(users={USER: PASSWORD}, activity_ids=activity_ids) as endpoint:
        produced = _replay(endpoint, recording.name, messages, tmp_path)
        assert endpoint.shell_ids() == []  # every recording ends with a Delete
        expected_shells = sum("transfer/Create<" in m["request"] for m in messages)
        assert endpoint.counters.shells_created == expected_shells
    if recording.stem == "test_winrs_send":
        assert produced == b"output 1\noutput 2\n"  # stdin reached the process in two Sends
    elif recording.stem == "test_winrs_extra_opts":
        assert produced == f"{tmp_path}\n".encode()  # WorkingDirectory was honoured
    elif recording.stem in ("test_winrs_environment", "test_winrs_noprofile"):
        assert (b"env1=var1\n" in produced) == (recording.stem == "test_winrs_environment")
        assert (b"1234=5678\n" in produced) == (recording.stem == "test_winrs_environment")
    elif recording.stem == "test_client_execute_cmd_environment":
        assert b"string=string value\n" in produced and b"hyphen - var=abc @ 123\n" in produced
    elif recording.stem == "test_winrs_standard":
        assert produced == b"hi\r\n"
    elif recording.stem == "test_client_execute_cmd":
        assert produced.endswith(b"abc\n")


@needs_recordings
def test_compare_envelopes_reports_differences_precisely() -> None:
    recorded = yaml.safe_load((RECORDINGS / "test_winrs_standard.yml").read_text())["messages"][2]["response"]
    command_id = "CF84C20A-0A35-43FA-AF78-0B4711DA5F30"
    ours = "AAAAC20A-0A35-43FA-AF78-0B4711DA5F30"
    extra_chunk = f'</rsp:Stream><rsp:Stream Name="stdout" CommandId="{ours}">aGk='
    altered = (
        recorded.replace(command_id, ours)
        .replace(f'Name="stderr" CommandId="{ours}" End="true"', f'Name="stderr" CommandId="{ours}"')
        .replace("<rsp:ExitCode>0</rsp:ExitCode>", "<rsp:ExitCode>1</rsp:ExitCode>")
        .replace("aGkNCg==", "aGkNCg==" + extra_chunk)  # a second stdout chunk is not a difference
    )
    receive_response = "/s:Envelope/s:Body[2]/rsp:ReceiveResponse[1]"
    assert compare_envelopes(recorded, recorded) == []
    assert compare_envelopes(recorded, altered, {ours: command_id}) == [
        f"{receive_response}/rsp:Stream[3]: missing attribute End='true'",
        f"{receive_response}/rsp:CommandState[4]/rsp:ExitCode[1]: text is '1', recorded '0'",
    ]


# -- command faults, shell options and code pages -------------------------------------------------------

COMMAND_GONE = (
    "The Windows Remote Shell received a request to perform an operation on a command identifier that does not "
    "exist. Either the command has completed execution or the client specified an invalid command identifier."
)


def _fault_message(response: str) -> str:
    element = next(ET.fromstring(response).iter("{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}Message"))
    return "".join(element.itertext()).strip()


def test_an_unknown_command_id_is_invalid_selectors_naming_no_shell(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint)
    shell_id = p.open_shell()
    with pytest.raises(WSManFaultError) as fault:
        p.get_command_output_raw(shell_id, "87E77BEB-6761-4C48-9D70-A00266B8459A")
    assert (fault.value.fault_code, fault.value.fault_subcode, fault.value.wsman_fault_code) == (
        "s:Sender", "w:InvalidSelectors", SHELL_NOT_FOUND)
    assert "faultDetail/UnexpectedSelectors" in fault.value.response
    assert _fault_message(fault.value.response) == COMMAND_GONE
    assert shell_id not in fault.value.response and "ProviderFault" not in fault.value.response
    p.close_shell(shell_id)


def test_a_command_dropped_mid_receive_fails_it_as_an_unknown_command(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint, operation_timeout_sec=20, read_timeout_sec=30)
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, "sleep 10")
    threading.Timer(0.3, endpoint.drop_command, args=(shell_id, command_id)).start()
    with pytest.raises(WSManFaultError) as fault:
        p.get_command_output_raw(shell_id, command_id)
    assert fault.value.wsman_fault_code == SHELL_NOT_FOUND
    assert _fault_message(fault.value.response) == COMMAND_GONE
    assert endpoint.shell_ids() == [shell_id]  # the shell lives on
    assert endpoint.command_ids() == []
    p.close_shell(shell_id)


def test_skip_cmd_shell_runs_only_a_path_never_a_name_on_path(endpoint: WinRMEndpoint, tmp_path: Path) -> None:
    # Real Windows with WINRS_SKIP_CMD_SHELL=TRUE fails a bare "powershell.exe" (recorded by pypsrp's
    # test_winrs_no_cmd_shell) and runs C:\Windows\...\powershell.exe; here a bare "echo" is on PATH.
    p = protocol(endpoint)
    shell_id = p.open_shell()
    with pytest.raises(WSManFaultError) as fault:
        p.run_command(shell_id, "echo", ["hi"], skip_cmd_shell=True)
    assert (fault.value.code, fault.value.fault_code, fault.value.fault_subcode) == (500, "s:Receiver",
                                                                                     "w:InternalError")
    assert fault.value.wsman_fault_code == 0x80070002 == 2147942402
    assert fault.value.reason == "The system cannot find the file specified. "
    assert ('<f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\\system32\\winrscmd.dll">'
            "The system cannot find the file specified. </f:ProviderFault>") in fault.value.response
    assert "FaultDetail" not in fault.value.response
    # an absolute path runs without a command processor: no word splitting or expansion by a shell
    command_id = p.run_command(shell_id, "/bin/echo", ['"a  b"', "$HOME", "c\\\\d"], skip_cmd_shell=True)
    assert p.get_command_output(shell_id, command_id) == (b"a  b $HOME c\\\\d\n", b"", 0)
    # the same words through the command processor: the shell expands $HOME
    command_id = p.run_command(shell_id, "echo", ["$HOME"])
    out, _, _ = p.get_command_output(shell_id, command_id)
    assert out.strip() != b"$HOME"
    p.close_shell(shell_id)
    assert endpoint.counters.commands_run == 2  # the refused command never ran


@pytest.mark.parametrize(
    ("codepage", "expected"),
    [(None, "Grüße ?".encode("cp437")), (65001, "Grüße こ".encode()), (1252, "Grüße ?".encode("cp1252")),
     (850, "Grüße ?".encode("cp850"))],
    ids=["oem-default-437", "utf-8", "ansi-1252", "oem-850"],
)
def test_output_is_in_the_shells_code_page(endpoint: WinRMEndpoint, codepage: int | None, expected: bytes) -> None:
    p = protocol(endpoint)
    shell_id = p.open_shell() if codepage is None else p.open_shell(codepage=codepage)
    command_id = p.run_command(shell_id, "printf", ["'Grüße こ'"])
    assert p.get_command_output(shell_id, command_id) == (expected, b"", 0)
    p.close_shell(shell_id)


def test_stdin_is_read_in_the_shells_code_page(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint)
    shell_id = p.open_shell()  # pywinrm's default code page, 437
    command_id = p.run_command(shell_id, "od", ["-An", "-tx1"])
    p.send_command_input(shell_id, command_id, "Grüße".encode("cp437"), end=True)
    out, _, code = p.get_command_output(shell_id, command_id)
    assert (out.decode().split(), code) == ("Grüße".encode().hex(" ").split(), 0)  # the process got UTF-8
    p.close_shell(shell_id)


def test_an_unknown_code_page_is_refused_at_create(endpoint: WinRMEndpoint) -> None:
    p = protocol(endpoint)
    with pytest.raises(WSManFaultError) as fault:
        p.open_shell(codepage=12345)
    assert (fault.value.fault_subcode, fault.value.wsman_fault_code) == ("w:InvalidParameter", 87)
    assert endpoint.shell_ids() == []
    p.transport.close_session()
