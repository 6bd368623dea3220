"""The Windows playbooks pass Ansible's syntax check, and every module argument is a documented option.

A syntax check does not see a misspelled option (``dset:`` for ``dest:``), so each task's arguments
are compared with ``ansible-doc -j`` for its module (options and their aliases; literal values
against the documented choices). Uses the Ansible of this environment with the collections that
the ``ansible`` package bundles (ansible.windows, community.vmware).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WINDOWS = REPO / "playbooks" / "windows"
PLAYBOOKS = sorted(WINDOWS.glob("*.yml"))
TASK_FILES = sorted((WINDOWS / "tasks").glob("*.yml"))  # included by the playbooks (include_tasks)
BIN = Path(sys.executable).parent
HELPER = Path(__file__).resolve().parent / "playbook_tasks.py"

MISSPELLED = """\
- name: Seeded mistakes
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy with a misspelled option
      ansible.windows.win_copy:
        src: app.msi
        dset: 'C:\\lab\\app.msi'
    - name: Stat through an alias (fine)
      ansible.windows.win_stat:
        dest: 'C:\\lab\\app.msi'
        checksum_algorithm: sha256
    - name: Nested
      block:
        - name: Install with a misspelled option
          ansible.windows.win_package:
            product_id: '{00000000-0000-0000-0000-000000000001}'
            expected_retrun_code: [0, 3010]
            state: installed
"""


def ansible_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_RETRY_FILES_ENABLED="0")


RENDER_VARS = {"lab_artifact": "/srv/artifacts/Journal Client 1.2.MSI", "lab_product": "journal-client",
               "lab_version": "1.2.0", "lab_digest": "ab" * 32, "lab_product_id": "{1234}"}


def read_playbooks(files: list[Path], env: dict[str, str]) -> dict[str, Any]:
    """Every task of ``files`` as Ansible reads it (file, task name, resolved module, arguments), and
    deploy.yml's play vars rendered with RENDER_VARS."""
    command = [sys.executable, str(HELPER), str(WINDOWS / "deploy.yml"), json.dumps(RENDER_VARS), *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    read: dict[str, Any] = json.loads(result.stdout)
    return read


def module_docs(modules: set[str], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """ansible-doc's options of each module (one ansible-doc call for all of them)."""
    result = subprocess.run([str(BIN / "ansible-doc"), "-j", *sorted(modules)], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    docs = json.loads(result.stdout)
    missing = modules - set(docs)
    assert not missing, f"ansible-doc does not know {sorted(missing)}: {result.stderr}"
    return {name: body["doc"].get("options") or {} for name, body in docs.items()}


def argument_problems(calls: list[dict[str, Any]], docs: dict[str, dict[str, Any]]) -> list[str]:
    """Unknown options (aliases count as known) and literal values outside an option's choices."""
    problems = []
    for call in calls:
        options = docs[call["module"]]
        names = {alias: name for name, body in options.items() for alias in [name, *(body.get("aliases") or [])]}
        where = f"{Path(call['file']).name}: task {call['task']!r}: {call['module']}"
        for key, value in call["args"].items():
            if key not in names:
                problems.append(f"{where} has no option {key!r}")
                continue
            choices = options[names[key]].get("choices")
            literal = isinstance(value, str | int | bool) and "{{" not in str(value)
            if choices and literal and value not in choices:
                problems.append(f"{where}: {key}={value!r} is not one of {choices}")
    return problems


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return ansible_env(tmp_path_factory.mktemp("ansible-home"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "seeded.yml"
    path.write_text(MISSPELLED)
    return path


@pytest.fixture(scope="module")
def read(env: dict[str, str], seeded: Path) -> dict[str, Any]:
    return read_playbooks([*PLAYBOOKS, *TASK_FILES, seeded], env)


@pytest.fixture(scope="module")
def calls(read: dict[str, Any]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = read["tasks"]
    return tasks


@pytest.fixture(scope="module")
def docs(env: dict[str, str], calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return module_docs({c["module"] for c in calls}, env)


@pytest.fixture(scope="module")
def syntax_check(env: dict[str, str]) -> tuple[int, str]:
    """``ansible-playbook --syntax-check`` of every Windows playbook (one process: Ansible starts slowly)."""
    command = [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", *map(str, PLAYBOOKS)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    return result.returncode, result.stdout + result.stderr


def test_the_four_windows_playbooks_exist() -> None:
    assert [p.name for p in PLAYBOOKS] == ["baseline.yml", "deploy.yml", "reset.yml", "rollback.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_syntax_check_passes(syntax_check: tuple[int, str], playbook: Path) -> None:
    code, output = syntax_check
    assert code == 0, output
    assert f"playbook: {playbook}\n" in output


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_every_task_argument_is_a_documented_option(calls: list[dict[str, Any]], docs: dict[str, dict[str, Any]],
                                                    playbook: Path) -> None:
    mine = [c for c in calls if Path(c["file"]) == playbook]
    assert len(mine) >= 5
    assert argument_problems(mine, docs) == []


def test_misspelled_options_are_reported(calls: list[dict[str, Any]], docs: dict[str, dict[str, Any]],
                                         seeded: Path) -> None:
    mine = [c for c in calls if Path(c["file"]) == seeded]
    assert [c["task"] for c in mine] == ["Copy with a misspelled option", "Stat through an alias (fine)",
                                         "Install with a misspelled option"]
    assert argument_problems(mine, docs) == [
        "seeded.yml: task 'Copy with a misspelled option': ansible.windows.win_copy has no option 'dset'",
        "seeded.yml: task 'Install with a misspelled option': ansible.windows.win_package has no option "
        "'expected_retrun_code'",
        "seeded.yml: task 'Install with a misspelled option': ansible.windows.win_package: state='installed' "
        "is not one of ['absent', 'present']",
    ]


def test_deploy_uses_the_agreed_modules_and_options(calls: list[dict[str, Any]]) -> None:
    deploy = [c for c in calls if Path(c["file"]).name == "deploy.yml"]
    by_module = {c["module"]: c["args"] for c in deploy}
    assert by_module["ansible.windows.win_stat"]["checksum_algorithm"] == "sha256"
    assert by_module["ansible.windows.win_package"]["expected_return_code"] == [0, 3010]
    assert by_module["ansible.windows.win_package"]["product_id"] == "{{ lab_product_id }}"
    assert by_module["ansible.builtin.set_stats"]["data"] == {
        "deployed_digest": "{{ copied.stat.checksum }}", "lab_deployed_at": "{{ installed.output[0].deployed_at }}"}
    reboot = next(c for c in deploy if c["module"] == "ansible.windows.win_reboot")
    assert reboot["task"].startswith("Reboot when the installer asks")
    raw = yaml.safe_load((WINDOWS / "deploy.yml").read_text())[0]["tasks"]
    reboot_task = next(t for t in raw if "ansible.windows.win_reboot" in t)
    assert reboot_task["when"] == "install.reboot_required | default(false)"


def test_rollback_uninstalls_by_product_id_then_restores(calls: list[dict[str, Any]]) -> None:
    rollback = [c for c in calls if Path(c["file"]).name == "rollback.yml"]
    assert rollback[0]["module"] == "ansible.builtin.include_tasks"
    assert rollback[0]["args"] == {"file": "tasks/uninstall.yml"}
    uninstall = [c["args"] for c in calls if Path(c["file"]).name == "uninstall.yml"
                 and c["module"] == "ansible.windows.win_package"]
    assert uninstall == [{"product_id": "{{ lab_product_id }}",
                          "arguments": "{{ lab_uninstall_arguments | default(omit) }}",
                          "state": "absent", "expected_return_code": [0, 3010]}]
    packages = [c["args"] for c in rollback if c["module"] == "ansible.windows.win_package"]
    assert len(packages) == 1
    assert packages[0]["state"] == "present" and packages[0]["path"] == "{{ previous_dest }}"


def test_reset_methods_are_selected_by_a_variable() -> None:
    tasks = yaml.safe_load((WINDOWS / "reset.yml").read_text())[0]["tasks"]
    whens = {t["name"]: t.get("when") for t in tasks}
    assert whens["Restore the Hyper-V checkpoint"] == "method == 'hyperv'"
    assert whens["Revert to the vSphere snapshot"] == "method == 'vsphere'"
    assert whens["Revert to the libvirt snapshot"] == "method == 'libvirt'"
    hyperv = next(t for t in tasks if t["name"] == "Restore the Hyper-V checkpoint")["ansible.windows.win_powershell"]
    assert "{{" not in hyperv["script"]  # names reach the script as parameters, never as script text
    assert hyperv["parameters"] == {"VMName": "{{ vm_name }}", "CheckpointName": "{{ lab_checkpoint }}"}


def test_deploy_paths_render_to_windows_paths(read: dict[str, Any]) -> None:
    rendered = read["rendered"]
    assert rendered["artifact_dest"] == "C:\\ProgramData\\lab\\artifacts\\Journal Client 1.2.MSI"
    assert rendered["install_log"] == "C:\\ProgramData\\lab\\logs\\journal-client-1.2.0-install.log"
    assert rendered["is_msi"] is True


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_every_template_is_valid_jinja(playbook: Path) -> None:
    environment = jinja2.Environment(autoescape=False)
    templates = re.findall(r"[^\n]*\{[{%][^\n]*", playbook.read_text())
    problems = []
    for value in strings(yaml.safe_load(playbook.read_text())):
        if "{{" in value or "{%" in value:
            try:
                environment.parse(value)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"{value!r}: {exc}")
    assert templates and problems == []


def test_a_broken_template_is_caught() -> None:
    with pytest.raises(jinja2.TemplateSyntaxError):
        jinja2.Environment(autoescape=False).parse('{{ (lab_dir ~ "\\logs\\" ~ lab_product) }}')


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


# --- issue 13: installers and uninstallers that cannot wait for a click, a deploy record that tells the truth

def package_tasks(tasks: list[Any]) -> list[dict[str, Any]]:
    """Every win_package task of a task list, blocks included."""
    found = []
    for task in tasks or []:
        if "block" in task:
            for section in ("block", "rescue", "always"):
                found += package_tasks(task.get(section) or [])
        elif "ansible.windows.win_package" in task:
            found.append(task)
    return found


def file_tasks(path: Path) -> list[Any]:
    loaded = yaml.safe_load(path.read_text())
    if loaded and "hosts" in loaded[0]:
        return [t for play in loaded for t in play.get("tasks", [])]
    return list(loaded)


def unattended_problems(files: dict[str, list[Any]]) -> list[str]:
    """win_package tasks that could hang: no timeout, or an uninstall without silent arguments or the EXE guard."""
    problems = []
    for name, tasks in files.items():
        for task in package_tasks(tasks):
            label = f"{name}: task {task['name']!r}"
            if "timeout" not in task:
                problems.append(f"{label} has no timeout")
            if task["ansible.windows.win_package"].get("state") == "absent":
                if "lab_uninstall_arguments" not in str(task["ansible.windows.win_package"].get("arguments")):
                    problems.append(f"{label} uninstalls without silent arguments")
                guards = [t for t in tasks if "ansible.builtin.assert" in t and "quiet_uninstall" in str(t)]
                if not guards or tasks.index(guards[0]) > tasks.index(task):
                    problems.append(f"{label} uninstalls without first refusing an EXE that would wait for a click")
    return problems


def test_every_install_and_uninstall_is_unattended_and_bounded() -> None:
    files = {p.name: file_tasks(p) for p in [*PLAYBOOKS, *TASK_FILES]}
    assert unattended_problems(files) == []
    absent = [(n, t["name"]) for n, tasks in files.items() for t in package_tasks(tasks)
              if t["ansible.windows.win_package"].get("state") == "absent"]
    assert absent == [("uninstall.yml", "Uninstall the candidate")]  # the one uninstall, shared
    includes = {n for n, tasks in files.items() for t in tasks
                if t.get("ansible.builtin.include_tasks") == {"file": "tasks/uninstall.yml"}}
    assert includes == {"reset.yml", "rollback.yml"}
    uninstall = next(t for t in package_tasks(files["uninstall.yml"]))
    assert uninstall["timeout"] == "{{ lab_uninstall_timeout | default(1800) | int }}"


def test_the_old_uninstall_is_reported() -> None:
    old = [{"name": "Uninstall the candidate",
            "ansible.windows.win_package": {"product_id": "{{ lab_product_id }}", "state": "absent",
                                            "expected_return_code": [0, 3010]}, "register": "removed"}]
    assert unattended_problems({"rollback.yml": old}) == [
        "rollback.yml: task 'Uninstall the candidate' has no timeout",
        "rollback.yml: task 'Uninstall the candidate' uninstalls without silent arguments",
        "rollback.yml: task 'Uninstall the candidate' uninstalls without first refusing an EXE that would wait "
        "for a click",
    ]


def test_the_exe_guard_names_what_to_set() -> None:
    tasks = file_tasks(WINDOWS / "tasks" / "uninstall.yml")
    guard = next(t for t in tasks if "ansible.builtin.assert" in t)
    assert guard["ansible.builtin.assert"]["that"] == (
        "not entry.found or entry.windows_installer or entry.quiet_uninstall or lab_uninstall_arguments is defined")
    assert "Set lab_uninstall_arguments" in guard["ansible.builtin.assert"]["fail_msg"]
    reader = tasks[0]["ansible.windows.win_powershell"]
    assert "{{" not in reader["script"] and reader["parameters"] == {"ProductId": "{{ lab_product_id }}"}
    assert "QuietUninstallString" in reader["script"] and "WindowsInstaller" in reader["script"]


def test_deploy_records_the_installed_products_own_version_and_the_host_time() -> None:
    tasks = file_tasks(WINDOWS / "deploy.yml")
    names = [t["name"] for t in tasks]
    reader = names.index("Read the installed product's own version and the host's time of this deploy")
    record = names.index("Record the deploy for runner.ps1's version and eventlog checks")
    assert names.index("Install the build") < reader < record
    script = tasks[reader]["ansible.windows.win_powershell"]["script"]
    assert "DisplayVersion" in script and "[DateTime]::UtcNow" in script and "{{" not in script
    content = tasks[record]["ansible.windows.win_copy"]["content"]
    for field in ("'installed_version': installed.output[0].installed_version",
                  "'install_skipped': not install.changed", "'deployed_at': installed.output[0].deployed_at",
                  "'product_id': lab_product_id"):
        assert field in content, field


def test_reset_resynchronises_a_reverted_clock() -> None:
    tasks = file_tasks(WINDOWS / "reset.yml")
    names = [t["name"] for t in tasks]
    wait = names.index("Wait for the reverted sandbox to answer")
    resync = names.index("Resynchronise the reverted clock")
    check = names.index("Refuse a sandbox whose clock is off")
    assert wait < resync < check
    assert tasks[resync]["ansible.windows.win_command"] == "w32tm.exe /resync /force"
    assert tasks[check]["when"] == "method != 'uninstall'"
    assert "lab_max_clock_skew | default(120)" in tasks[check]["ansible.builtin.assert"]["that"]


def test_vsphere_resets_have_their_controller_library_in_an_extra() -> None:
    # community.vmware runs on the controller (delegate_to: localhost) and needs pyVmomi there.
    tasks = file_tasks(WINDOWS / "reset.yml")
    vsphere = next(t for t in tasks if "community.vmware.vmware_guest_snapshot" in t)
    assert vsphere["delegate_to"] == "localhost"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["vmware"] == ["pyvmomi>=8"]
