"""The ssh transport's settings: read from the same inventory variables Ansible reads, and safe."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from lab.checks.delivery import PYTHON_BOOTSTRAP
from lab.errors import ConfigError, InfrastructureError
from lab.transports.base import transport_class
from lab.transports.ssh import SSHSettings, SSHTransport, exchange, option_values, remote_command

NAMESPACE_FACTS = {
    "ansible_connection": "ssh",
    "ansible_host": "127.0.0.1",
    "ansible_port": 40137,
    "ansible_user": "root",
    "ansible_ssh_private_key_file": "/srv/lab/.lab/ssh/id_ed25519",
    "ansible_ssh_common_args": "-o UserKnownHostsFile=/srv/lab/.lab/ssh/known_hosts -o StrictHostKeyChecking=yes",
    "ansible_python_interpreter": "/usr/bin/python3",
    "lab_port": 40200,
}


def test_settings_come_from_the_variables_ansible_reads() -> None:
    settings = SSHSettings.from_variables("ts-sbx-01", NAMESPACE_FACTS)
    assert settings == SSHSettings(
        host="127.0.0.1",
        port=40137,
        user="root",
        private_key_file="/srv/lab/.lab/ssh/id_ed25519",
        options=("-o", "UserKnownHostsFile=/srv/lab/.lab/ssh/known_hosts", "-o", "StrictHostKeyChecking=yes"),
        connect_timeout=10,
        python_interpreter="/usr/bin/python3",
    )


def test_defaults_are_ansibles_the_inventory_name_and_ssh_config() -> None:
    settings = SSHSettings.from_variables("web-01.example.org", {})
    assert (settings.host, settings.port, settings.user, settings.private_key_file) == \
        ("web-01.example.org", None, None, None)
    assert (settings.options, settings.connect_timeout, settings.python_interpreter) == ((), 10, "python3")


def test_strings_from_yaml_are_converted_and_extra_args_are_appended() -> None:
    settings = SSHSettings.from_variables("h", {"ansible_port": "2222", "ansible_ssh_timeout": "3",
                                                "ansible_ssh_common_args": "-o IdentitiesOnly=yes",
                                                "ansible_ssh_extra_args": "-o 'SendEnv=LANG LC_ALL'",
                                                "ansible_python_interpreter": "auto_silent"})
    assert (settings.port, settings.connect_timeout) == (2222, 3)
    assert settings.options == ("-o", "IdentitiesOnly=yes", "-o", "SendEnv=LANG LC_ALL")
    assert settings.python_interpreter == "python3"  # Ansible's discovery keyword is not a command


@pytest.mark.parametrize(("variables", "message"), [
    ({"ansible_port": "ssh"}, "host h: ansible_port 'ssh' is not a number"),
    ({"ansible_port": 70000}, "host h: ansible_port 70000 is out of range (1-65535)"),
    ({"ansible_host": "-oProxyCommand=x"}, "host h: ansible_host '-oProxyCommand=x' is not a host name"),
    ({"ansible_user": "-l"}, "host h: ansible_user '-l' is not a user name"),
    ({"ansible_ssh_common_args": "-o 'unclosed"}, "host h: ansible_ssh_common_args is not valid shell quoting"),
    ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"},
     "host h: ssh option StrictHostKeyChecking=no is refused"),
    ({"ansible_ssh_extra_args": "-oStrictHostKeyChecking=off"},
     "host h: ssh option StrictHostKeyChecking=off is refused"),
    ({"ansible_ssh_common_args": "-o BatchMode=no"}, "host h: ssh option BatchMode=no is refused"),
    ({"ansible_password": "hunter2"}, "host h: ansible_password is set, but the lab's ssh transport "
                                      "authenticates with keys only"),
])
def test_bad_or_unsafe_settings_are_refused_naming_the_variable(variables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SSHSettings.from_variables("h", variables)
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


def test_the_transports_own_options_come_first_so_the_inventory_cannot_override_them() -> None:
    settings = SSHSettings.from_variables("h", {**NAMESPACE_FACTS, "ansible_ssh_extra_args":
                                                "-o ControlPath=/tmp/elsewhere -o ConnectTimeout=600"})
    command = settings.ssh_command(Path("/tmp/lab-ssh-x/master"), "no")
    assert command[:13] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                            "-o", "ControlPath=/tmp/lab-ssh-x/master", "-o", "ControlMaster=no",
                            "-o", "ServerAliveInterval=5"]
    assert command[15:21] == ["-p", "40137", "-l", "root", "-i", "/srv/lab/.lab/ssh/id_ed25519"]
    assert command[-4:] == ["-o", "ControlPath=/tmp/elsewhere", "-o", "ConnectTimeout=600"]
    pairs = option_values(command[1:])
    first = {}
    for key, value in pairs:
        first.setdefault(key, value)  # ssh keeps the first value it sees for an option
    assert first["ControlPath"] == "/tmp/lab-ssh-x/master"
    assert first["StrictHostKeyChecking"] == "yes"  # not weakened by accept-new in the inventory either
    assert first["ConnectTimeout"] == "10"
    assert first["StrictHostKeyChecking"] == "yes"


@pytest.mark.parametrize("argv", [
    ["/usr/bin/python3", "-c", PYTHON_BOOTSTRAP],
    ["printf", "%s\n", "a b", "it's", '"double"', "$HOME", "`id`", "; rm -rf /", "\\n", "*", ""],
])
def test_the_remote_command_is_quoted_for_a_posix_shell(argv: list[str]) -> None:
    line = remote_command(argv)
    assert shlex.split(line) == argv
    echoed = subprocess.run(["sh", "-c", "for a in " + line + "; do printf '[%s]' \"$a\"; done"],
                            capture_output=True, text=True, check=True).stdout
    assert echoed == "".join(f"[{a}]" for a in argv)


def test_ssh_is_the_transport_for_ansible_connection_ssh() -> None:
    assert transport_class("ssh", host="h") is SSHTransport


def test_sessions_need_an_open_transport() -> None:
    transport = SSHTransport("ts-sbx-01", NAMESPACE_FACTS)
    assert transport.variables["ansible_python_interpreter"] == "/usr/bin/python3"
    with pytest.raises(InfrastructureError, match="ssh transport to ts-sbx-01 is not open; call open"):
        transport.execute(["true"], b"", 5)
    transport.close()  # nothing to close: a no-op, twice
    transport.close()


def test_a_session_past_its_deadline_is_killed_and_keeps_its_output() -> None:
    proc = subprocess.Popen(["sh", "-c", "echo first; echo oops >&2; sleep 30; echo late"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out, err, timed_out = exchange(proc, b"", time.monotonic() + 1.0)
    assert (out, err, timed_out) == (b"first\n", b"oops\n", True)  # "late" never came: killed before the sleep ended
    assert proc.returncode == -9


def test_large_stdin_is_fed_while_output_is_read() -> None:
    payload = b"x" * 3_000_000
    proc = subprocess.Popen(["sh", "-c", "wc -c; echo done >&2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err, timed_out = exchange(proc, payload, time.monotonic() + 60)
    assert (out.strip(), err, timed_out, proc.returncode) == (b"3000000", b"done\n", False, 0)


def test_ssh_args_common_and_extra_args_come_in_ansibles_order_with_a_jump_host() -> None:
    settings = SSHSettings.from_variables("h", {"ansible_ssh_args": "-C -o ControlPersist=60s",
                                                "ansible_ssh_common_args": "-o ProxyJump=bastion.example.org",
                                                "ansible_ssh_extra_args": "-o UserKnownHostsFile=/etc/lab/kh"})
    assert settings.options == ("-C", "-o", "ControlPersist=60s", "-o", "ProxyJump=bastion.example.org",
                                "-o", "UserKnownHostsFile=/etc/lab/kh")


def test_become_runs_the_runner_through_sudo_without_a_prompt() -> None:
    assert SSHSettings.from_variables("h", {}).become == ()
    assert SSHSettings.from_variables("h", {"ansible_become": False}).become == ()
    settings = SSHSettings.from_variables("h", {"ansible_become": "yes", "ansible_become_user": "appadmin"})
    assert settings.become == ("sudo", "-H", "-n", "-u", "appadmin", "--")
    flagged = SSHSettings.from_variables("h", {"ansible_become": True, "ansible_become_flags": "-H -S -n -E",
                                               "ansible_become_exe": "/usr/bin/sudo"})
    assert flagged.become == ("/usr/bin/sudo", "-H", "-n", "-E", "-n", "-u", "root", "--")


@pytest.mark.parametrize(("variables", "message"), [
    ({"ansible_become": True, "ansible_become_method": "su"}, "sudo only"),
    ({"ansible_become": True, "ansible_become_password": "x"}, "ansible_become_password is set"),
    ({"ansible_become": True, "ansible_become_user": "-x"}, "ansible_become_user '-x' is not a user name"),
])
def test_become_that_would_prompt_or_is_not_sudo_is_refused(variables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSHSettings.from_variables("h", variables)
