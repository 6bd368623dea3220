"""The baseline's packed path: the same tree as the copy, on local and namespace sandboxes; a campaign
packs the baseline as it is now (never a stale pack) and audits itself in an intact chain."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from lab.ansible.playbook import run_playbook
from lab.campaign.baseline import baseline_pack, baseline_tree, baseline_vars, pack_baseline
from lab.config.labfile import load_lab
from lab.evidence import audit
from lab.evidence.store import Store
from lab.sandboxes.base import Provider
from lab.sandboxes.local import LocalProvider, stop_processes
from lab.sandboxes.namespace.provider import NamespaceProvider
from tests.support.labfiles import copy_default_lab, require_root_and_sshd, run_lab, stop_local_sandboxes, write

pytestmark = pytest.mark.integration

# Files each sandbox writes for itself (pid, hostname, host keys, login records): compared without content.
OWN_CONTENT = {"run/journal.pid", "etc/hostname", "etc/ssh/lab/ssh_host_ed25519_key",
               "etc/ssh/lab/ssh_host_ed25519_key.pub", "etc/ssh/lab/sshd_config", "var/log/lastlog", "var/log/wtmp"}
PACKED_TASK = "Install the journal service, its command and config, and the shared carefmt library (packed)"


def listing(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every entry under ``root``: type and mode, owner, group, and the sha256 of a file's content."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            content = "" if not stat.S_ISREG(info.st_mode) or relative in OWN_CONTENT else \
                hashlib.sha256(path.read_bytes()).hexdigest()
            found[relative] = (stat.filemode(info.st_mode), info.st_uid, info.st_gid, content)
    return found


def written_tree(provider: Provider, root: str, home: Path) -> Path:
    """Where the files the sandbox has since its reset are: its root, or a namespace sandbox's upper layer."""
    if isinstance(provider, NamespaceProvider):
        generation = json.loads((home / "state.json").read_text())["generation"]
        return home / f"gen-{generation}" / "upper"
    return Path(root)


@pytest.mark.parametrize("provider_name", ["local", "namespace"])
def test_the_packed_baseline_installs_the_same_tree_as_the_copy(tmp_path: Path, provider_name: str) -> None:
    if provider_name == "namespace":
        require_root_and_sshd()
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    tree = baseline_tree(lab_yml.parent / "playbooks" / "baseline.yml")
    write(tree / "etc" / "journal" / "secret.conf", "token\n").chmod(0o600)
    write(tree / "opt" / "tools" / "bin" / "rotate", "#!/bin/sh\n").chmod(0o750)
    (tree / "var" / "spool" / "journal").mkdir(parents=True)
    (tree / "opt" / "shared" / "python" / "carefmt-1.py").symlink_to("carefmt.py")
    config = load_lab(lab_yml, provider=provider_name)
    provider: Provider = LocalProvider(config.state_dir) if provider_name == "local" else \
        NamespaceProvider(config.state_dir)
    copied, packed = config.sandboxes
    trees = {}
    try:
        for sandbox, extra in ((copied, {}), (packed, baseline_vars(config.baseline, config.state_dir))):
            assert config.baseline is not None
            handle = provider.reset(sandbox)
            if provider_name == "local":
                (Path(handle.root) / "etc").chmod(0o750)  # a directory that exists keeps its mode
            outcome = run_playbook(config.baseline, inventory=config.inventory.sources, ansible=config.ansible,
                                   host=sandbox.name,
                                   extravars={**handle.facts, **extra}, work_dir=tmp_path / "runs" / sandbox.name,
                                   timeout=300)
            assert outcome.host_ok(sandbox.name), outcome.detail(sandbox.name)
            trees[sandbox.name] = listing(written_tree(provider, handle.root, provider.home(sandbox)))
    finally:
        for sandbox in config.sandboxes:
            if provider_name == "local":
                stop_processes(LocalProvider(config.state_dir).home(sandbox) / "root")
            else:
                provider.destroy(sandbox)
    assert trees[copied.name] == trees[packed.name]
    tree_files = trees[packed.name]
    assert tree_files["etc/journal/secret.conf"][0] == "-rw-------"
    assert tree_files["opt/tools/bin/rotate"][0] == "-rwxr-x---"
    assert tree_files["var/spool/journal"][0] == "drwxr-xr-x"
    assert tree_files["opt/shared/python/carefmt-1.py"] == tree_files["opt/shared/python/carefmt.py"]
    assert tree_files["usr/local/bin/journal"][:2] == ("-rwxr-xr-x", os.geteuid())
    if provider_name == "local":
        assert tree_files["etc"][0] == "drwxr-x---"


def task_outcomes(run_dir: Path) -> dict[str, str]:
    """Task name -> what happened to it (``runner_on_ok``, ``runner_on_skipped``...) in the runs under ``run_dir``."""
    found = {}
    # in the order ansible-runner numbered them (COUNTER-UUID.json): as text, 10-... would come before 9-...
    events = sorted(run_dir.glob("baseline-*/artifacts/*/job_events/*.json"),
                    key=lambda path: (path.parent, int(path.name.split("-", 1)[0])))
    for event_file in events:
        event = json.loads(event_file.read_text())
        if str(event.get("event", "")).startswith("runner_on_"):
            found[event["event_data"]["task"]] = event["event"]
    return found


def test_a_campaign_installs_the_baseline_as_it_is_now_and_audits_itself(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    assert run_lab(lab_yml, "build", "care-planner@2.0.0").returncode == 0
    config = load_lab(lab_yml)
    assert config.baseline is not None
    stale = baseline_pack(config.baseline, config.state_dir)  # as an earlier campaign left it
    carefmt = baseline_tree(config.baseline) / "opt" / "shared" / "python" / "carefmt.py"
    changed = carefmt.read_text() + "# patched on the controller after the last campaign\n"
    carefmt.write_text(changed)
    try:
        result = run_lab(lab_yml, "run", "care-planner@2.0.0", "--no-reports", timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        installed = config.state_dir / "sandboxes" / "ts-sbx-01" / "root" / "opt" / "shared" / "python" / "carefmt.py"
        assert installed.read_text() == changed
    finally:
        stop_local_sandboxes(lab_yml)
    fresh = config.state_dir / "packs" / \
        f"baseline-{hashlib.sha256(pack_baseline(baseline_tree(config.baseline))).hexdigest()}.tar.gz"
    assert stale is not None and stale != fresh
    assert sorted((config.state_dir / "packs").iterdir()) == sorted([stale, fresh])
    (campaign_dir,) = (config.state_dir / "runs").iterdir()
    outcomes = task_outcomes(campaign_dir / "baseline")  # one baseline run over the sandboxes without a golden image
    assert (outcomes[PACKED_TASK], outcomes["Install the journal service, its command and config, and the shared "
                                            "carefmt library"]) == ("runner_on_ok", "runner_on_skipped")
    verified = run_lab(lab_yml, "audit", "verify")
    assert (verified.returncode, verified.stdout.split(":")[0]) == (0, "audit log intact")
    assert verified.stdout.startswith("audit log intact: 2 entries, head ")
    store = Store(config.state_dir / "lab.sqlite3")
    try:
        started = audit.entries(store, "campaign-start")[0].data()
    finally:
        store.close()
    assert started["files"]["playbooks/files/baseline/"] == hashlib.sha256(fresh.read_bytes()).hexdigest()
