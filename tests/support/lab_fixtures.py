"""A default lab with a finished campaign in its store (no sandboxes run) and approvers' SSH keys,
for the policy half's tests; such labs made once per session as templates and copied per test."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.campaign.runner import plan_cells
from lab.config.labfile import LabConfig, load_lab
from lab.evidence.store import Store
from lab.model import Build, Campaign, Result, Status, StepRecord
from lab.util.clock import now
from tests.support.labfiles import CliResult, copy_default_lab

PRINCIPALS = {"kari": "kari.nordmann@example.no", "lars": "lars.haugen@example.no",
              "ingrid": "ingrid.solberg@example.no", "mallory": "mallory@example.org"}
LISTED = ("kari", "lars", "ingrid")  # mallory has a key, but allowed_signers does not list it
BUILD = "care-planner@2.0.0"
# Tuesday 2026-12-01 10:00 UTC; three days later (Friday 19:00 Trondheim) production's window is open.
T0 = "2026-12-01T10:00:00Z"
T_OPEN = "2026-12-04T17:00:00Z"
# what a promotion prints in a lab whose lab.yml names no audit.checkpoint_key
NOT_SEALED = ("audit chain not sealed: no audit.checkpoint_key in lab.yml; name the lab's signing key there "
              "(audit: {checkpoint_key: PATH}) or seal with `lab audit checkpoint --key KEY`\n")


def make_key(directory: Path, name: str) -> Path:
    """A fresh passphrase-less ed25519 key pair made by ssh-keygen; returns the private key's path."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allowed_signers_text(keys: dict[str, Path], names: tuple[str, ...] = LISTED) -> str:
    lines = []
    for name in names:
        key_type, blob = key_pub(keys[name])
        lines.append(f'{PRINCIPALS[name]} namespaces="lab-approval" {key_type} {blob}')
    return "\n".join(lines) + "\n"


def key_pub(key: Path) -> tuple[str, str]:
    key_type, blob, *_ = Path(f"{key}.pub").read_text().split()
    return key_type, blob


@dataclass
class SeededLab:
    """A lab whose store holds ``care-planner@2.0.0`` with one finished campaign."""

    root: Path
    lab_yml: Path
    config: LabConfig
    store: Store
    build: Build
    campaign: Campaign

    def cli(self, runner: Callable[..., CliResult], *args: str) -> CliResult:
        return runner("--lab", str(self.lab_yml), *args)


def finished_campaign(config: LabConfig, store: Store, build: Build, failing: tuple[str, ...] = ()) -> Campaign:
    """A campaign of ``build`` over the planned cells, every check passing except ``failing``
    (``sandbox/suite/check``), deployed digest as the build's."""
    cells = plan_cells(config, build.product)
    campaign = store.create_campaign(build, cells, config.path)
    for sandbox in sorted({s for s, _ in cells}):
        store.record_step(StepRecord(campaign.id, sandbox, "deploy", True, False, "ok", build.digest, now(), now()))
    for sandbox, suite in cells:
        results = [Result(c.id, Status.FAIL if f"{sandbox}/{suite}/{c.id}" in failing else Status.PASS, "checked",
                          {}, 1, 1) for c in config.suites[suite].checks]
        store.start_cell(campaign.id, sandbox, suite)
        store.finish_cell(campaign.id, sandbox, suite, results)
    store.finish_campaign(campaign.id)
    return store.campaign(campaign.id)


def seed_lab(root: Path, keys: dict[str, Path], failing: tuple[str, ...] = (),
             agreement_edit: Callable[[str], str] | None = None) -> SeededLab:
    """Copy the default lab to ``root``, list the approvers' keys, register build A from a small
    artifact, and record a finished campaign of it."""
    lab_yml = copy_default_lab(root)
    if agreement_edit is not None:
        agreement = root / "agreement.yml"
        agreement.write_text(agreement_edit(agreement.read_text()))
    (root / "keys").mkdir(exist_ok=True)
    (root / "keys" / "allowed_signers").write_text(allowed_signers_text(keys))
    config = load_lab(lab_yml)
    artifact = root / "artifacts" / "care-planner-2.0.0.tar.gz"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"care-planner 2.0.0, as tested\n")
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", hashlib.sha256(artifact.read_bytes()).hexdigest(), artifact)
    campaign = finished_campaign(config, store, build, failing)
    return SeededLab(root, lab_yml, config, store, build, campaign)


def move_store_paths(database: Path, old: Path, new: Path) -> None:
    """Point the paths a store keeps (each build's artifact, each campaign's lab.yml) that lie under
    ``old`` to the same place under ``new``: a copied lab's store then names the copy's files."""
    db = sqlite3.connect(database)
    try:
        with db:
            for table, column in (("builds", "artifact"), ("campaigns", "lab_path")):
                db.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                           f"WHERE substr({column}, 1, ?) = ?",
                           (str(new), len(str(old)) + 1, len(str(old)) + 1, f"{old}/"))
    finally:
        db.close()


def copy_seeded(template: SeededLab, target: Path) -> SeededLab:
    """A copy of ``template`` (its store closed) at ``target``: every file of its directory, the
    store included, with the store's paths moved to the copy."""
    shutil.copytree(template.root, target, symlinks=True)
    config = load_lab(target / template.lab_yml.relative_to(template.root))
    database = config.state_dir / "lab.sqlite3"
    move_store_paths(database, template.root, target)
    store = Store(database)
    build = store.build(template.build.product, template.build.version)
    assert build is not None, f"{template.build.ref} is missing from the copy of {template.root}"
    return SeededLab(target, config.path, config, store, build, store.campaign(template.campaign.id))


class LabTemplates:
    """Seeded labs made once per test session (per xdist worker) and handed to each test as a copy,
    so the setup's CLI calls run once instead of once per test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[str, SeededLab] = {}

    def copy(self, name: str, make: Callable[[Path], SeededLab], target: Path) -> SeededLab:
        """A copy at ``target`` of the template ``name``, which ``make(directory)`` builds on first use
        (one name, one way of making it)."""
        if name not in self.made:
            template = make(self.directory / name)
            template.store.close()
            self.made[name] = template
        return copy_seeded(self.made[name], target)
