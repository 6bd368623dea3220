"""How the lab reaches a WinRM host: typed settings read from the host's inventory variables.

The inventory is the source of truth, read the way Ansible's ``winrm`` connection plugin reads
it, so deploy (Ansible) and verify (this transport) never disagree about how to reach a host.

=====================================  =======================================================
Inventory variable                     Meaning (default)
=====================================  =======================================================
``ansible_host``                       address to connect to (the inventory host name)
``ansible_port``                       TCP port (5986; 5985 is plain HTTP)
``ansible_user``                       account to log on as (required)
``ansible_password``                   its password (required except for kerberos); never
                                       logged, never in an error message, never on a command line
``ansible_winrm_scheme``               ``http`` or ``https`` (``http`` on port 5985, else ``https``)
``ansible_winrm_path``                 URL path of the listener (``/wsman``)
``ansible_winrm_transport``            ``ntlm``, ``kerberos``, ``credssp`` or ``basic`` (Ansible's
                                       default: ``kerberos`` for ``user@REALM``, else ``basic``).
                                       Over HTTP only ntlm/kerberos/credssp, whose message
                                       encryption protects the body; ``basic`` needs HTTPS
``ansible_winrm_server_cert_validation``  ``validate`` (default) or ``ignore``; ``ignore`` must be
                                       set explicitly, and every report of the campaign says so
``ansible_winrm_ca_trust_path``        PEM bundle of the CAs to trust over HTTPS (the system's
                                       default bundle); never taken from ``REQUESTS_CA_BUNDLE``
``ansible_winrm_operation_timeout_sec``  WS-Man OperationTimeout of one request (20)
``ansible_winrm_read_timeout_sec``     HTTP read timeout; must be above the operation timeout (30)
``ansible_winrm_connection_timeout``   Ansible's shorthand: operation = it, read = it + 10
``ansible_winrm_message_encryption``   ``auto`` (default) or ``always``; ``never`` is refused
                                       over HTTP
``ansible_winrm_send_cbt``             send TLS channel binding with NTLM/kerberos (true)
``ansible_winrm_proxy``                HTTP proxy URL (none: proxy variables of the environment
                                       are not used)
``ansible_winrm_kerberos_delegation``  forward the kerberos ticket (false)
``ansible_winrm_kerberos_hostname_override``  SPN host name for kerberos
``ansible_python_interpreter``         the Python to run the Python runner with (``python3``)
``lab_runner``                         ``powershell`` (default: Windows hosts, runner.ps1) or
                                       ``python`` (a WinRM host whose shell is POSIX)
``lab_winrm_ready_timeout``            seconds to wait for a host that refuses connections
                                       (booting, rebooting) before giving up (120)
``lab_winrm_retry_delay``              seconds to wait before the one retry on a fresh shell
                                       after a shell quota fault (5)
=====================================  =======================================================

``ansible_winrm_kinit_*`` only tell Ansible how to get a kerberos ticket; the lab uses the
ticket cache as it is. Any other ``ansible_winrm_*`` variable is refused, because Ansible
would honour it and the lab would not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlunsplit

from lab.errors import ConfigError

Scheme = Literal["http", "https"]
AuthTransport = Literal["ntlm", "kerberos", "credssp", "basic"]
Runner = Literal["python", "powershell"]

AUTH_TRANSPORTS: tuple[AuthTransport, ...] = ("ntlm", "kerberos", "credssp", "basic")
# pywinrm's names for Basic authentication: "ssl" is Basic over HTTPS, "plaintext" Basic over HTTP.
BASIC_ALIASES = ("basic", "ssl", "plaintext")
# The envelope size pywinrm asks for and the smallest MaxEnvelopeSizekb a supported Windows has.
MAX_ENVELOPE_SIZE = 153600
# Raw stdin bytes per Send: base64 (4/3) plus the envelope and message sealing stay well below it.
STDIN_CHUNK = (MAX_ENVELOPE_SIZE - 16384) // 4 * 3
UTF8_CODEPAGE = 65001

IGNORED = frozenset({"kinit_cmd", "kinit_args", "kinit_env_vars", "kinit_mode"})
KNOWN = frozenset({
    "host", "port", "user", "pass", "password", "scheme", "path", "transport", "server_cert_validation",
    "ca_trust_path", "operation_timeout_sec", "read_timeout_sec", "connection_timeout", "message_encryption",
    "send_cbt", "proxy", "kerberos_delegation", "kerberos_hostname_override",
}) | IGNORED


@dataclass(frozen=True)
class WinRMSettings:
    """Everything needed to reach one WinRM host, validated. ``password`` never shows in repr."""

    host: str  # the inventory host name, used in every message
    address: str
    port: int
    scheme: Scheme
    path: str
    user: str
    password: str | None = field(repr=False)
    transport: AuthTransport
    validate_cert: bool
    ca_trust_path: str | None
    operation_timeout: int
    read_timeout: int
    message_encryption: Literal["auto", "always"]
    send_cbt: bool
    proxy: str | None
    kerberos_delegation: bool
    kerberos_hostname_override: str | None
    runner: Runner
    interpreter: str
    ready_timeout: float
    retry_delay: float

    @property
    def url(self) -> str:
        """The endpoint URL, e.g. ``https://win-01.lab:5986/wsman``."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((self.scheme, f"{address}:{self.port}", self.path, "", ""))

    @property
    def posix_shell(self) -> bool:
        """True when commands run under a POSIX shell (the Python runner), False for cmd.exe."""
        return self.runner == "python"


def first(variables: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """The first of ``names`` that is set, with its value; ``(names[0], None)`` if none is."""
    for name in names:
        if variables.get(name) is not None:
            return name, variables[name]
    return names[0], None


def text(host: str, name: str, value: Any, *, secret: bool = False) -> str:
    """``value`` as a non-empty string; templates are refused (the lab does not render Jinja)."""
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value) == "":
        shown = "a value that is not a string" if secret else f"{value!r}"
        raise ConfigError(f"host {host}: {name} must be a non-empty string, not {shown}")
    result = str(value)
    if "{{" in result or "{%" in result:
        raise ConfigError(f"host {host}: {name} is a Jinja template; the lab reads inventory values as they are, "
                          "so put the value itself in the inventory (e.g. from a vault-decrypted file)")
    return result


def number(host: str, name: str, value: Any, *, minimum: float, integer: bool = False) -> float:
    """``value`` as a number of at least ``minimum`` (a whole number if ``integer``)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"host {host}: {name} must be a number, not {value!r}") from None
    if math.isnan(result) or result < minimum or (integer and not result.is_integer()):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"host {host}: {name} must be {kind} of at least {minimum:g}, not {value!r}")
    return result


def flag(host: str, name: str, value: Any, default: bool) -> bool:
    """A boolean the way Ansible reads one (true/false, yes/no, 1/0)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"host {host}: {name} must be true or false, not {value!r}")


def auth_transport(host: str, variables: Mapping[str, Any], user: str, scheme: Scheme) -> AuthTransport:
    """The authentication to use; Basic over plain HTTP is refused."""
    name, raw = first(variables, "ansible_winrm_transport")
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ConfigError(f"host {host}: {name} lists {len(raw)} transports; the lab needs exactly one "
                              f"of {', '.join(AUTH_TRANSPORTS)}")
        raw = raw[0]
    if raw is None:  # Ansible's own choice when none is set
        raw = "kerberos" if "@" in user else "basic"
    value = text(host, name, raw).strip().lower()
    if value in BASIC_ALIASES:
        if scheme != "https":
            raise ConfigError(
                f"host {host}: {name} {value!r} (Basic authentication) over ansible_winrm_scheme http would "
                "send the password in clear text; use ansible_winrm_scheme: https (port 5986), or "
                "ansible_winrm_transport: ntlm, kerberos or credssp, which encrypt every message over http")
        return "basic"
    if value not in AUTH_TRANSPORTS:
        raise ConfigError(f"host {host}: {name} {value!r} is not supported; use one of {', '.join(AUTH_TRANSPORTS)}")
    return value


def timeouts(host: str, variables: Mapping[str, Any]) -> tuple[int, int]:
    """(operation timeout, read timeout) in whole seconds; the read timeout must be the larger."""
    shorthand = variables.get("ansible_winrm_connection_timeout")
    operation, read = 20, 30
    if shorthand is not None:
        operation = int(number(host, "ansible_winrm_connection_timeout", shorthand, minimum=1, integer=True))
        read = operation + 10
    if variables.get("ansible_winrm_operation_timeout_sec") is not None:
        operation = int(number(host, "ansible_winrm_operation_timeout_sec",
                               variables["ansible_winrm_operation_timeout_sec"], minimum=1, integer=True))
    if variables.get("ansible_winrm_read_timeout_sec") is not None:
        read = int(number(host, "ansible_winrm_read_timeout_sec", variables["ansible_winrm_read_timeout_sec"],
                          minimum=1, integer=True))
    if read <= operation:
        raise ConfigError(f"host {host}: ansible_winrm_read_timeout_sec ({read}) must be above "
                          f"ansible_winrm_operation_timeout_sec ({operation}): the host may hold a request "
                          "for the whole operation timeout before it answers")
    return operation, read


def settings_from_variables(host: str, variables: Mapping[str, Any]) -> WinRMSettings:
    """Validated settings for ``host`` from its inventory variables; ConfigError naming the variable if not."""
    unknown = sorted(k for k in variables if k.startswith("ansible_winrm_") and k[len("ansible_winrm_"):] not in KNOWN)
    if unknown:
        raise ConfigError(f"host {host}: {unknown[0]} is not supported by the lab's WinRM transport; "
                          "remove it or use one of ansible_winrm_" + ", ansible_winrm_".join(sorted(KNOWN - IGNORED)))
    _, address = first(variables, "ansible_host", "ansible_winrm_host")
    address = text(host, "ansible_host", address if address is not None else host)
    port_name, port_raw = first(variables, "ansible_port", "ansible_winrm_port")
    port = int(number(host, port_name, port_raw if port_raw is not None else 5986, minimum=1, integer=True))
    scheme_raw = variables.get("ansible_winrm_scheme")
    scheme_text = text(host, "ansible_winrm_scheme", scheme_raw).lower() if scheme_raw is not None else \
        ("http" if port == 5985 else "https")
    if scheme_text not in ("http", "https"):
        raise ConfigError(f"host {host}: ansible_winrm_scheme must be http or https, not {scheme_raw!r}")
    scheme: Scheme = "https" if scheme_text == "https" else "http"
    user_name, user = first(variables, "ansible_user", "ansible_winrm_user")
    if user is None:
        raise ConfigError(f"host {host}: ansible_user is not set; WinRM needs an account to log on with")
    user = text(host, user_name, user)
    transport = auth_transport(host, variables, user, scheme)
    password_name, password = first(variables, "ansible_password", "ansible_winrm_pass", "ansible_winrm_password")
    if password is not None:
        password = text(host, password_name, password, secret=True)
    elif transport != "kerberos":
        raise ConfigError(f"host {host}: ansible_password is not set; {transport} authentication needs one")
    validation = cert_validation(variables)
    if validation not in ("validate", "ignore"):
        raise ConfigError(f"host {host}: ansible_winrm_server_cert_validation must be validate or ignore, "
                          f"not {variables['ansible_winrm_server_cert_validation']!r}")
    ca_raw = variables.get("ansible_winrm_ca_trust_path")
    encryption = str(variables.get("ansible_winrm_message_encryption", "auto")).strip().lower()
    if encryption not in ("auto", "always", "never"):
        raise ConfigError(f"host {host}: ansible_winrm_message_encryption must be auto, always or never, "
                          f"not {encryption!r}")
    if encryption == "never":
        if scheme == "http":
            raise ConfigError(f"host {host}: ansible_winrm_message_encryption never over http would send every "
                              "message (and the checks' evidence) in clear text; use https or remove the setting")
        encryption = "auto"  # over https, TLS protects the body and auto adds no sealing
    runner_text = str(variables.get("lab_runner", "powershell")).strip().lower()
    if runner_text not in ("python", "powershell"):
        raise ConfigError(f"host {host}: lab_runner must be python or powershell, not {variables['lab_runner']!r}")
    runner: Runner = "python" if runner_text == "python" else "powershell"
    operation, read = timeouts(host, variables)
    proxy = variables.get("ansible_winrm_proxy")
    override = variables.get("ansible_winrm_kerberos_hostname_override")
    return WinRMSettings(
        host=host,
        address=address,
        port=port,
        scheme=scheme,
        path="/" + text(host, "ansible_winrm_path", variables.get("ansible_winrm_path", "/wsman")).lstrip("/"),
        user=user,
        password=password,
        transport=transport,
        validate_cert=validation == "validate",
        ca_trust_path=text(host, "ansible_winrm_ca_trust_path", ca_raw) if ca_raw is not None else None,
        operation_timeout=operation,
        read_timeout=read,
        message_encryption="always" if scheme == "http" or encryption == "always" else "auto",
        send_cbt=flag(host, "ansible_winrm_send_cbt", variables.get("ansible_winrm_send_cbt"), True),
        proxy=text(host, "ansible_winrm_proxy", proxy) if proxy is not None else None,
        kerberos_delegation=flag(host, "ansible_winrm_kerberos_delegation",
                                 variables.get("ansible_winrm_kerberos_delegation"), False),
        kerberos_hostname_override=text(host, "ansible_winrm_kerberos_hostname_override", override)
        if override is not None else None,
        runner=runner,
        interpreter=text(host, "ansible_python_interpreter", variables.get("ansible_python_interpreter", "python3")),
        ready_timeout=number(host, "lab_winrm_ready_timeout", variables.get("lab_winrm_ready_timeout", 120),
                             minimum=0),
        retry_delay=number(host, "lab_winrm_retry_delay", variables.get("lab_winrm_retry_delay", 5), minimum=0),
    )


def cert_validation(variables: Mapping[str, Any]) -> str:
    """``ansible_winrm_server_cert_validation`` as lab reads it everywhere (``validate`` by default):
    the transport to decide, ``lab.transports.security.security_notes`` to tell the reports when it is ``ignore``."""
    return str(variables.get("ansible_winrm_server_cert_validation", "validate")).strip().lower()
