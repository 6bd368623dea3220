"""WinRM settings from inventory variables: Ansible's defaults, and refusals that name host and variable."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lab.errors import ConfigError
from lab.transports.security import security_notes
from lab.transports.winrm.settings import MAX_ENVELOPE_SIZE, STDIN_CHUNK, cert_validation, settings_from_variables

SECRET = "Not-In-Any-Message-42"


def settings(**variables: Any) -> Any:
    base: dict[str, Any] = {"ansible_host": "win-01.lab.example", "ansible_user": "labsvc",
                            "ansible_password": SECRET, "ansible_winrm_transport": "ntlm"}
    base.update(variables)
    return settings_from_variables("win-01", {k: v for k, v in base.items() if v is not None})


def refusal(**variables: Any) -> str:
    with pytest.raises(ConfigError) as error:
        settings(**variables)
    message = str(error.value)
    assert SECRET not in message
    assert message.startswith("host win-01: ")
    return message


def test_defaults_follow_ansibles_winrm_plugin() -> None:
    s = settings()
    assert (s.url, s.scheme, s.port, s.transport) == ("https://win-01.lab.example:5986/wsman", "https", 5986, "ntlm")
    assert (s.validate_cert, s.ca_trust_path, s.operation_timeout, s.read_timeout) == (True, None, 20, 30)
    assert (s.runner, s.interpreter, s.ready_timeout, s.retry_delay) == ("powershell", "python3", 120.0, 5.0)
    assert s.message_encryption == "auto" and s.proxy is None and s.send_cbt is True
    plain = settings(ansible_port=5985)
    assert (plain.scheme, plain.url, plain.message_encryption) == ("http", "http://win-01.lab.example:5985/wsman",
                                                                   "always")
    assert settings(ansible_host=None).address == "win-01"  # the inventory name, like Ansible
    assert settings(ansible_host="::1", ansible_winrm_path="custom").url == "https://[::1]:5986/custom"


def test_ansibles_default_transport_is_basic_or_kerberos() -> None:
    assert settings(ansible_winrm_transport=None).transport == "basic"  # over https: allowed
    assert settings(ansible_winrm_transport=None, ansible_user="labsvc@LAB.EXAMPLE").transport == "kerberos"
    assert settings(ansible_winrm_transport=["credssp"]).transport == "credssp"
    assert settings(ansible_winrm_transport="ssl").transport == "basic"


@pytest.mark.parametrize("transport", ["basic", "plaintext", None])
def test_basic_over_http_is_refused(transport: str | None) -> None:
    message = refusal(ansible_port=5985, ansible_winrm_transport=transport)
    assert "ansible_winrm_transport" in message and "ansible_winrm_scheme http" in message
    assert "clear text" in message


def test_timeouts_are_validated() -> None:
    assert (settings(ansible_winrm_connection_timeout=60).operation_timeout,
            settings(ansible_winrm_connection_timeout=60).read_timeout) == (60, 70)
    message = refusal(ansible_winrm_operation_timeout_sec=30, ansible_winrm_read_timeout_sec=30)
    assert message == ("host win-01: ansible_winrm_read_timeout_sec (30) must be above "
                       "ansible_winrm_operation_timeout_sec (30): the host may hold a request for the whole "
                       "operation timeout before it answers")
    assert "must be a whole number of at least 1" in refusal(ansible_winrm_operation_timeout_sec=0.5)
    assert "must be a number" in refusal(lab_winrm_ready_timeout="soon")


def test_certificate_validation_is_off_only_when_ignore_is_written() -> None:
    assert settings(ansible_winrm_server_cert_validation="ignore").validate_cert is False
    assert settings(ansible_winrm_server_cert_validation="Validate").validate_cert is True
    for value in ("no", False, "off"):
        assert "must be validate or ignore" in refusal(ansible_winrm_server_cert_validation=value)
    assert settings(ansible_winrm_ca_trust_path="/etc/lab/ca.pem").ca_trust_path == "/etc/lab/ca.pem"


def test_secrets_and_templates() -> None:
    assert SECRET not in repr(settings())
    assert refusal(ansible_password="{{ vault_winrm_password }}") == (
        "host win-01: ansible_password is a Jinja template; the lab reads inventory values as they are, so put the "
        "value itself in the inventory (e.g. from a vault-decrypted file)")
    assert refusal(ansible_password=None) == ("host win-01: ansible_password is not set; ntlm authentication "
                                              "needs one")
    assert settings(ansible_password=None, ansible_winrm_transport="kerberos").password is None
    assert settings(ansible_password=None, ansible_winrm_password=SECRET).password == SECRET


def test_unsupported_and_unknown_values_are_refused() -> None:
    assert refusal(ansible_winrm_cert_pem="/x.pem").startswith(
        "host win-01: ansible_winrm_cert_pem is not supported by the lab's WinRM transport")
    assert "is not supported; use one of ntlm, kerberos, credssp, basic" in refusal(ansible_winrm_transport="digest")
    assert "lists 2 transports" in refusal(ansible_winrm_transport=["ntlm", "kerberos"])
    assert "lab_runner must be python or powershell" in refusal(lab_runner="bash")
    assert "clear text" in refusal(ansible_port=5985, ansible_winrm_message_encryption="never")
    assert settings(ansible_winrm_kinit_mode="manual").transport == "ntlm"  # only Ansible's kinit business


def test_a_stdin_chunk_fits_one_envelope() -> None:
    encoded = 4 * math.ceil(STDIN_CHUNK / 3)
    assert STDIN_CHUNK > 64 * 1024 and encoded + 8192 < MAX_ENVELOPE_SIZE


@pytest.mark.parametrize(("value", "read"), [(None, "validate"), ("Ignore ", "ignore"), ("VALIDATE", "validate")])
def test_cert_validation_is_read_one_way_for_the_transport_and_the_reports(value: str | None, read: str) -> None:
    variables = {} if value is None else {"ansible_winrm_server_cert_validation": value}
    assert cert_validation(variables) == read


def test_security_notes_are_what_the_reports_show_for_a_host_without_cert_validation() -> None:
    assert security_notes("win-02", {"ansible_winrm_server_cert_validation": "Ignore "}) == [
        "TLS certificate validation was turned OFF for win-02 (ansible_winrm_server_cert_validation: ignore)"]
    assert security_notes("win-01", {"ansible_winrm_server_cert_validation": "validate"}) == []
    assert security_notes("lin-01", {"ansible_connection": "ssh"}) == []
