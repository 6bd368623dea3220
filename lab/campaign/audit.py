"""A campaign's entries in the audit log: start, resume and finish, with the sha256 of every file
the campaign used (lab.yml, agreement, suites, playbooks, the baseline pack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.campaign.baseline import baseline_tree, pack_baseline, pack_digest
from lab.config.labfile import LabConfig
from lab.evidence.audit import AuditEntry, append
from lab.evidence.db import Connection
from lab.evidence.store import Store
from lab.model import Campaign
from lab.util.canonical import sha256_hex


def used_files(config: LabConfig, product: str, baseline_pack: Path | None = None) -> dict[str, str]:
    """sha256 of every file a campaign of ``product`` uses: lab.yml, agreement, suites, playbooks,
    and the baseline tree the baseline playbook installs (key ending in ``/``: the sha256 of its
    reproducible pack, the very bytes the sandboxes unpack).

    Keys are paths relative to the lab's directory (absolute when outside it). ``baseline_pack``
    is the pack a campaign already made (``lab.campaign.baseline.baseline_pack``, named by its sha256); without
    it the tree is packed here.
    """
    paths: list[Path] = [config.path, config.agreement.path, config.products[product].deploy_playbook]
    if config.baseline is not None:
        paths.append(config.baseline)
    paths.extend(config.suites[name].path for name in config.products[product].suites)

    def name_of(path: Path) -> str:
        try:
            return path.resolve().relative_to(config.root.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    found = {name_of(path): sha256_hex(path.read_bytes()) for path in paths}
    tree = baseline_tree(config.baseline) if config.baseline is not None else None
    if baseline_pack is not None and tree is not None:
        found[f"{name_of(tree)}/"] = pack_digest(baseline_pack)
    elif tree is not None and tree.is_dir():
        found[f"{name_of(tree)}/"] = sha256_hex(pack_baseline(tree))
    return dict(sorted(found.items()))


def golden_images(store: Store, campaign_id: str) -> dict[str, str]:
    """The key of the golden image each sandbox of the campaign started from (its recorded baseline
    step: in place from that image, or installed by the playbook and then kept as it)."""
    return {s.sandbox: s.deployed_digest for s in store.steps(campaign_id)
            if s.step == "baseline" and s.ok and s.deployed_digest}


def append_campaign_event(db: Connection, store: Store, campaign: Campaign, kind: str,
                          files: dict[str, str] | None = None, golden: dict[str, str] | None = None) -> AuditEntry:
    """Append a campaign's ``start``, ``resume`` or ``finish`` inside the caller's open transaction:
    the one that records the event (the ``audit`` of ``Store.create_campaign``, ``reopen_unfinished``
    and ``finish_campaign``), so neither is committed without the other.

    ``campaign`` is the campaign as it stands after the event. ``files`` (``used_files``, computed
    before the transaction: hashing and packing never hold the write lock) are kept with it, and
    ``golden``, the key of the golden baseline each sandbox is to start from; a finish entry keeps
    the result counts and the golden image each sandbox did start from.
    """
    if kind not in ("start", "resume", "finish"):
        raise ValueError(f"unknown campaign event {kind!r}; use start, resume or finish")
    payload: dict[str, Any] = {
        "campaign": campaign.id, "build": campaign.build_ref, "digest": campaign.digest,
        "sandboxes": list(campaign.sandboxes), "suites": list(campaign.suites), "state": campaign.state.value,
    }
    if files is not None:
        payload["files"] = files
    if golden:
        payload["golden"] = dict(sorted(golden.items()))
    if kind == "finish":
        counts: dict[str, int] = {}
        for cell in store.cells(campaign.id):
            for result in cell.results:
                counts[result.status.value] = counts.get(result.status.value, 0) + 1
        payload["counts"] = dict(sorted(counts.items()))
        payload["golden"] = dict(sorted(golden_images(store, campaign.id).items()))
    time = {"start": campaign.created_at, "finish": campaign.finished_at}.get(kind)
    return append(db, f"campaign-{kind}", f"{campaign.build_ref} campaign {campaign.id}", payload, time)


def audit_campaign_event(store: Store, campaign: Campaign, kind: str, config: LabConfig | None = None) -> AuditEntry:
    """Record a campaign event (as ``append_campaign_event``) in a transaction of its own."""
    files = used_files(config, campaign.product) if config is not None else None
    with store.transaction() as db:
        return append_campaign_event(db, store, campaign, kind, files)
