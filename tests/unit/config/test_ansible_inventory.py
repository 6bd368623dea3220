"""The inventory as Ansible itself resolves it: INI, directories of sources, group_vars/host_vars
files and directories, inventory plugins, Jinja in variables, vaulted values; ansible.cfg found
as Ansible finds it; vault secrets given as ansible-playbook takes them (issue 11).

These run Ansible's real InventoryManager (in lab's child process): nothing is faked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.ansible.settings import ansible_settings, find_ansible_config
from lab.config.labfile import load_lab
from lab.errors import ConfigError
from lab.transports.winrm.settings import settings_from_variables
from tests.support.estate import SECRET, SITE_PROFILE, VAULT_PASSWORD, encrypt, make_estate
from tests.support.labfiles import CliResult, copy_default_lab, write


@pytest.fixture
def estate(tmp_path: Path) -> tuple[Path, Path]:
    """The default lab with an INI inventory, group_vars directories and vaulted values; its password file."""
    lab_yml = copy_default_lab(tmp_path / "lab")
    password_file = tmp_path / "vault-pass"
    make_estate(lab_yml, password_file, ("ts-sbx-01", "ts-sbx-02", "ts-sbx-03"))
    return lab_yml, password_file


def test_an_ini_estate_with_group_vars_directories_and_vaulted_values_resolves(estate: tuple[Path, Path]) -> None:
    lab_yml, password_file = estate
    config = load_lab(lab_yml, vault_password_files=(str(password_file),))
    assert [s.name for s in config.sandboxes] == ["ts-sbx-01", "ts-sbx-02", "ts-sbx-03"]
    first = config.sandbox("ts-sbx-01").host_vars
    assert first["care_site_profile"] == SITE_PROFILE  # group_vars/sandboxes/vault.yml, decrypted
    assert first["lab_estate_secret"] == SECRET  # group_vars/all/ directory
    assert first["lab_estate_note"] == "from a host_vars directory"
    assert "lab_estate_note" not in config.sandbox("ts-sbx-02").host_vars
    assert config.inventory.hosts_in("production") == [f"prod-ts-{n:02}" for n in range(1, 25)]  # INI range
    assert config.inventory.variables("prod-ts-07")["care_site_profile"] == "production"
    assert config.inventory.sources == (lab_yml.parent / "inventory",)
    assert config.ansible.vault_password_files == (str(password_file),)


def test_vault_secrets_come_from_the_environment_and_vault_ids_too(estate: tuple[Path, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lab_yml, password_file = estate
    config = load_lab(lab_yml, vault_ids=(f"estate@{password_file}",))
    assert config.sandbox("ts-sbx-02").host_vars["care_site_profile"] == SITE_PROFILE
    assert config.ansible.vault_arguments() == ["--vault-id", f"estate@{password_file}"]
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password_file))
    assert load_lab(lab_yml).sandbox("ts-sbx-03").host_vars["care_site_profile"] == SITE_PROFILE


def test_a_missing_or_wrong_vault_secret_is_exit_2_before_anything_runs(
        estate: tuple[Path, Path], run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    lab_yml, _ = estate
    missing = run_cli("--lab", str(lab_yml), "run", "care-planner@2.0.0")
    assert missing.code == 2
    assert "host ts-sbx-01: variable " in missing.err and "cannot be resolved" in missing.err
    assert "--vault-password-file" in missing.err
    assert "no vault secrets" in missing.err and "Traceback" not in (missing.out + missing.err)
    wrong = write(tmp_path / "wrong-pass", "not-the-password\n")
    refused = run_cli("--lab", str(lab_yml), "--vault-password-file", str(wrong), "run", "care-planner@2.0.0")
    assert refused.code == 2 and "Decryption failed" in refused.err
    absent = run_cli("--lab", str(lab_yml), "--vault-password-file", str(tmp_path / "nope"), "validate")
    assert absent.code == 2 and "vault password file not found" in absent.err
    prompt = run_cli("--lab", str(lab_yml), "--vault-id", "prod@prompt", "validate")
    assert prompt.code == 2 and "does not prompt" in prompt.err
    for failed in (missing, refused, absent, prompt):  # one message on stderr, nothing half-printed on stdout
        assert failed.err.startswith("lab: ") and failed.err.count("\n") == 1 and failed.out == "", failed
    assert not (lab_yml.parent / ".lab" / "lab.sqlite3").exists()  # nothing ran, nothing was stored


def test_secrets_are_not_in_validate_output(estate: tuple[Path, Path], run_cli: Callable[..., CliResult]) -> None:
    lab_yml, password_file = estate
    result = run_cli("--lab", str(lab_yml), "--vault-password-file", str(password_file), "validate")
    assert result.code == 0, (result.out + result.err)
    assert SECRET not in (result.out + result.err) and VAULT_PASSWORD not in (result.out + result.err)
    assert f"inventory: {lab_yml.parent / 'inventory'} (resolved by Ansible)" in (result.out + result.err)


def test_jinja_in_a_variable_is_templated_as_ansible_does(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("        lab_platform: debian-12\n      hosts:\n        ts-sbx-01",
                                               "        lab_platform: debian-12\n        base_port: 2200\n"
                                               "        ansible_port: \"{{ base_port + 1 }}\"\n"
                                               "        app_home: \"{{ ansible_env.HOME }}/app\"\n"
                                               "      hosts:\n        ts-sbx-01", 1))
    config = load_lab(lab_yml)
    variables = config.sandbox("ts-sbx-01").host_vars
    assert variables["ansible_port"] == 2201 and isinstance(variables["ansible_port"], int)
    # Needs facts: Ansible resolves it when a task uses it; the lab leaves it out and says why.
    assert "app_home" not in variables
    assert "ansible_env" in config.inventory.unresolved["ts-sbx-01"]["app_home"]


def test_a_lab_variable_that_cannot_be_templated_is_refused_naming_host_and_variable(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("        lab_platform: debian-12\n",
                                               "        lab_platform: debian-12\n"
                                               "        ansible_port: \"{{ no_such_port }}\"\n", 1))
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    assert "host ts-sbx-01: variable ansible_port cannot be resolved" in str(info.value)
    assert "no_such_port" in str(info.value)


def test_an_unparsable_ini_inventory_names_the_file(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    (lab_yml.parent / "inventory" / "hosts.yml").unlink()
    ini = write(lab_yml.parent / "inventory" / "hosts.ini", "[sandboxes\nts-sbx-01\n")
    lab_yml.write_text(lab_yml.read_text().replace("inventory/hosts.yml", "inventory/hosts.ini"))
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    assert str(info.value).startswith(f"{ini}: Ansible: ")
    assert "ini" in str(info.value)


def test_malformed_yaml_in_the_inventory_names_file_and_line(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("        ts-sbx-01: {}", "        ts-sbx-01: [unclosed"))
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    assert str(info.value).startswith(f"{hosts}:")
    assert "malformed YAML" in str(info.value)  # lab's own pre-pass over the files reads them first


def test_an_inventory_plugin_and_a_list_of_sources(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    root = lab_yml.parent
    write(root / "extra" / "more.ini", "[windows_candidates]\nts-sbx-01\nts-sbx-02\n")
    # Ansible's constructed plugin: a group made from a variable, as many estates make theirs.
    write(root / "extra" / "zz_constructed.yml",
          "plugin: constructed\nstrict: true\n"
          "keyed_groups:\n  - key: lab_platform\n    prefix: platform\n")
    lab_yml.write_text(lab_yml.read_text().replace("inventory: inventory/hosts.yml",
                                                   "inventory: [inventory/hosts.yml, extra]"))
    config = load_lab(lab_yml)
    assert config.inventory.hosts_in("windows_candidates") == ["ts-sbx-01", "ts-sbx-02"]
    assert "ts-sbx-03" in config.inventory.hosts_in("platform_debian_12")
    assert config.inventory.sources == (root / "inventory" / "hosts.yml", root / "extra")


def test_ansible_cfg_is_found_as_ansible_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir(mode=0o755)
    os.chmod(lab_dir, 0o755)
    cfg = write(lab_dir / "ansible.cfg", "[defaults]\n")
    assert find_ansible_config(lab_dir) == (cfg, "the lab's directory")
    elsewhere = write(tmp_path / "elsewhere" / "ansible.cfg", "[defaults]\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(elsewhere.parent))  # a directory holding one, as Ansible takes it
    assert find_ansible_config(lab_dir) == (elsewhere, "$ANSIBLE_CONFIG")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(tmp_path / "missing.cfg"))
    with pytest.raises(ConfigError, match="ANSIBLE_CONFIG names no file"):
        find_ansible_config(lab_dir)
    monkeypatch.delenv("ANSIBLE_CONFIG")
    os.chmod(lab_dir, 0o777)
    found, why = find_ansible_config(lab_dir)
    assert found != cfg and "world-writable" in why
    os.chmod(lab_dir, 0o755)
    assert ansible_settings(lab_dir).environment() == {"ANSIBLE_CONFIG": str(cfg)}


def test_ssh_settings_only_in_ansible_cfg_become_the_hosts_connection_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliResult]) -> None:
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    lab_yml = copy_default_lab(tmp_path / "lab")
    cfg = write(lab_yml.parent / "ansible.cfg",
                "[defaults]\nremote_user = labadmin\nprivate_key_file = keys/lab_ed25519\n"
                "[ssh_connection]\nssh_common_args = -o UserKnownHostsFile=/etc/lab/known_hosts\n"
                "ssh_extra_args = -o ProxyJump=bastion.lab.example.org\n"
                "[privilege_escalation]\nbecome = True\nbecome_user = appadmin\n")
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("        ts-sbx-02: {}", "        ts-sbx-02: {ansible_user: ops}"))
    config = load_lab(lab_yml)
    first, second = config.sandbox("ts-sbx-01").host_vars, config.sandbox("ts-sbx-02").host_vars
    assert first["ansible_user"] == "labadmin" and second["ansible_user"] == "ops"  # a variable beats the cfg
    assert first["ansible_ssh_private_key_file"] == str(lab_yml.parent / "keys" / "lab_ed25519")
    assert first["ansible_ssh_common_args"] == "-o UserKnownHostsFile=/etc/lab/known_hosts"
    assert first["ansible_ssh_extra_args"] == "-o ProxyJump=bastion.lab.example.org"
    assert (first["ansible_become"], first["ansible_become_user"]) == (True, "appadmin")
    result = run_cli("--lab", str(lab_yml), "validate")
    assert f"ansible.cfg: {cfg} (the lab's directory)" in (result.out + result.err)


def test_a_vaulted_winrm_password_is_decrypted_for_the_transport(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    password_file = write(tmp_path / "pass", VAULT_PASSWORD + "\n")
    root = lab_yml.parent
    write(root / "inventory" / "host_vars" / "win-rds-01" / "vault.yml",
          encrypt("ansible_password", "Winrm-Vaulted-1!", password_file))
    hosts = root / "inventory" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace(
        "    # windows_sandboxes:",
        "    windows_hosts:\n      vars:\n        ansible_connection: winrm\n        lab_provider: static\n"
        "        lab_platform: windows-server-2022-rds\n        ansible_winrm_transport: ntlm\n"
        "        ansible_user: svc-lab\n      hosts:\n        win-rds-01: {}\n    # windows_sandboxes:"))
    config = load_lab(lab_yml, vault_password_files=(str(password_file),))
    settings = settings_from_variables("win-rds-01", config.inventory.variables("win-rds-01"))
    assert settings.password == "Winrm-Vaulted-1!"
