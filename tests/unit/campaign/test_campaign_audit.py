"""A campaign's start, resume and finish are committed together with their audit entries, or not at all."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.campaign.audit import append_campaign_event
from lab.campaign.runner import CampaignRunner
from lab.config.labfile import LabConfig, load_lab
from lab.evidence import audit
from lab.evidence.store import CampaignAudit, Store
from lab.model import Build, Campaign, CampaignState, CellState, Result, Status
from tests.support.labfiles import copy_default_lab

CELLS = [("s1", "smoke"), ("s2", "smoke")]


class DiskGone(Exception):
    pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = Store(tmp_path / "lab.sqlite3")
    yield made
    made.close()


def build(store: Store) -> Build:
    return store.register_build("app", "1.0", "d" * 64, Path("/tmp/app.tgz"))


def appended_then_failed(db: sqlite3.Connection, campaign: Campaign) -> None:
    """An audit that gets its entry in and then fails, as a crash inside the transaction would."""
    audit.append(db, "campaign-start", f"{campaign.build_ref} campaign {campaign.id}", {"campaign": campaign.id})
    raise DiskGone("the disk went away")


def counts(store: Store) -> dict[str, int]:
    with store.reading() as db:
        return {table: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("campaigns", "cells", "audit", "audit_head")}


def test_a_failing_start_entry_leaves_no_campaign_no_cells_and_no_entry(store: Store) -> None:
    with pytest.raises(DiskGone):
        store.create_campaign(build(store), CELLS, Path("lab.yml"), audit=appended_then_failed)
    assert counts(store) == {"campaigns": 0, "cells": 0, "audit": 0, "audit_head": 0}
    assert store.campaigns() == []
    campaign = store.create_campaign(build(store), CELLS, Path("lab.yml"),
                                     audit=lambda db, c: append_campaign_event(db, store, c, "start"))
    assert counts(store) == {"campaigns": 1, "cells": 2, "audit": 1, "audit_head": 1}
    assert [(e.seq, e.kind, e.data()["campaign"]) for e in audit.entries(store)] == [(1, "campaign-start",
                                                                                     campaign.id)]
    assert audit.verify(store).ok


def test_a_failing_resume_entry_leaves_the_campaign_as_it_was(store: Store) -> None:
    campaign = store.create_campaign(build(store), CELLS, Path("lab.yml"))
    store.start_cell(campaign.id, "s1", "smoke")
    store.finish_campaign(campaign.id)
    with pytest.raises(DiskGone):
        store.reopen_unfinished(campaign.id, audit=appended_then_failed)
    assert store.campaign(campaign.id).state is CampaignState.FINISHED
    assert [c.state for c in store.cells(campaign.id)] == [CellState.RUNNING, CellState.PENDING]
    assert audit.entries(store) == []


def test_a_failing_finish_entry_leaves_the_campaign_running(store: Store) -> None:
    campaign = store.create_campaign(build(store), CELLS, Path("lab.yml"))
    with pytest.raises(DiskGone):
        store.finish_campaign(campaign.id, audit=appended_then_failed)
    assert (store.campaign(campaign.id).state, store.campaign(campaign.id).finished_at) == (CampaignState.RUNNING,
                                                                                            None)
    assert audit.entries(store) == []


def test_each_entry_describes_the_campaign_as_its_event_left_it(store: Store) -> None:
    def entry(kind: str) -> CampaignAudit:
        return lambda db, c: append_campaign_event(db, store, c, kind)

    campaign = store.create_campaign(build(store), CELLS, Path("lab.yml"), audit=entry("start"))
    store.start_cell(campaign.id, "s1", "smoke")
    store.finish_cell(campaign.id, "s1", "smoke", [Result("a", Status.PASS, "ok", {}, 1, 1)])
    store.start_cell(campaign.id, "s2", "smoke")  # the process dies here
    assert store.reopen_unfinished(campaign.id, audit=entry("resume")) == 1
    store.finish_cell(campaign.id, "s2", "smoke", [Result("a", Status.FAIL, "no", {}, 1, 1)])
    finished = store.finish_campaign(campaign.id, audit=entry("finish"))
    assert finished == store.campaign(campaign.id) and finished.state is CampaignState.FINISHED
    entries = audit.entries(store)
    assert [(e.kind, e.data()["state"]) for e in entries] == [
        ("campaign-start", "running"), ("campaign-resume", "running"), ("campaign-finish", "finished")]
    assert (entries[0].time, entries[2].time) == (campaign.created_at, finished.finished_at)
    assert entries[2].data()["counts"] == {"fail": 1, "pass": 1}
    assert audit.verify(store).ok and audit.verify(store).entries == 3


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[LabConfig, Store]]:
    config = load_lab(copy_default_lab(tmp_path / "lab"))
    made = Store(config.state_dir / "lab.sqlite3")
    yield config, made
    made.close()


def test_a_campaign_whose_start_entry_fails_is_not_recorded_and_runs_nothing(
        lab: tuple[LabConfig, Store], monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = lab
    registered = store.register_build("care-planner", "2.0.0", "a" * 64, config.root / "artifacts" / "a.tar.gz")

    def failing(*args: object) -> None:
        raise DiskGone("the disk went away")

    monkeypatch.setattr("lab.campaign.runner.append_campaign_event", failing)
    with pytest.raises(DiskGone):
        CampaignRunner(config, store).start(registered)
    assert counts(store) == {"campaigns": 0, "cells": 0, "audit": 0, "audit_head": 0}
    assert not (config.state_dir / "sandboxes").exists()
