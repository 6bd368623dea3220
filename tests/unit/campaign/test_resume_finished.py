"""`lab resume` of a finished campaign is refused (exit 2) and changes nothing: not its finish time,
not the audit log, not any file under the lab."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from lab.model import CampaignState
from tests.support.lab_fixtures import SeededLab
from tests.support.labfiles import CliResult


def everything(root: Path) -> dict[str, bytes]:
    """Every file under the lab, with the store as a SQL dump (the WAL folded in)."""
    files = {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "sqlite3" not in p.name}
    with closing(sqlite3.connect(root / ".lab" / "lab.sqlite3")) as db:
        files["store"] = "\n".join(db.iterdump()).encode()
    return files


def test_resuming_a_finished_campaign_is_refused_and_changes_nothing(
        seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    campaign = seeded.campaign
    root = seeded.config.path.parent
    seeded.store.close()
    before = everything(root)
    assert campaign.state is CampaignState.FINISHED and campaign.finished_at
    for name in (campaign.id, "latest"):
        result = seeded.cli(lab_cli, "resume", name)
        assert result.code == 2, result.err
        assert result.err == (f"lab: campaign {campaign.id} finished at {campaign.finished_at}; there is nothing to "
                              f"resume and it is left as it is. See its results with `lab show {campaign.id}`, or "
                              f"test {campaign.build_ref} again with `lab run {campaign.build_ref}`\n")
    assert everything(root) == before
