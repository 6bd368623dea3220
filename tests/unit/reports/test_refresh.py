"""A build's reports refreshed after a decision: only the text around the results is rendered again,
the results section is kept from the file on disk (checked against its record), and every file
stays exactly what ``lab report`` would write whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree, html

from lab import api
from lab.evidence.store import Store
from lab.model import Result, Status
from lab.reports import WRITTEN, parts, refresh, render
from lab.reports import data as report_data
from lab.reports.data import gather, summarise
from lab.reports.parts import RECORDS, read_record, results_key
from lab.util.clock import parse_instant
from tests.support.lab_fixtures import BUILD, PRINCIPALS, T0, LabTemplates, SeededLab, seed_lab

AT = parse_instant(T0)
GENERATED = "2026-12-01T10:00:00.000+00:00"
FAILING = "ts-sbx-01/portfolio-compat/journal-health"


@pytest.fixture(autouse=True)
def fixed_generation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report says it was generated at GENERATED, so a refreshed file can be compared with a whole render."""
    monkeypatch.setattr(report_data, "now", lambda: GENERATED)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The campaign ids whose results were decoded (``Store.cells``), in order."""
    reads: list[str] = []
    real = Store.cells
    monkeypatch.setattr(Store, "cells", lambda self, campaign_id: reads.append(campaign_id) or real(self, campaign_id))
    return reads


@pytest.fixture
def waivable(tmp_path: Path, keys: dict[str, Path], lab_templates: LabTemplates) -> Iterator[SeededLab]:
    """Build A with journal-health failing on ts-sbx-01, in a lab whose pilot gate allows waivers."""
    def make(root: Path) -> SeededLab:
        return seed_lab(root, keys, failing=(FAILING,),
                        agreement_edit=lambda text: text.replace("waivers: false", "waivers: true", 1))
    lab = lab_templates.copy("waivable", make, tmp_path / "lab")
    yield lab
    lab.store.close()


def whole(seeded: SeededLab) -> list[bytes]:
    """The build's reports as ``lab report`` renders them whole, now, in WRITTEN's order."""
    data = gather(seeded.config, seeded.store, seeded.campaign, AT)
    return [render(data, fmt).encode("utf-8") for fmt in WRITTEN]


def table(path: Path, css_class: str) -> list[list[str]]:
    (found,) = html.fromstring(path.read_text(encoding="utf-8")).find_class(css_class)
    return [[" ".join("".join(td.itertext()).split()) for td in tr.findall("td")]
            for tr in found.findall("tr") if tr.findall("td")]


def test_an_approval_rewrites_the_page_and_the_export_around_results_it_does_not_decode(
        seeded: SeededLab, keys: dict[str, Path], decoded: list[str]) -> None:
    paths = refresh(seeded.config, seeded.store, seeded.build, AT)  # no record yet: rendered whole, once
    assert decoded == [seeded.campaign.id]
    junit = paths[1]
    written = (junit.stat().st_ino, junit.stat().st_mtime_ns, junit.read_bytes())
    junit_record = parts.record_path(seeded.config, junit)
    recorded = (junit_record.stat().st_ino, junit_record.read_bytes())
    decoded.clear()

    with api.Lab(str(seeded.lab_yml)) as lab:
        approved = api.approve(lab, BUILD, "production", keys["kari"], now=AT)
    assert approved.refreshed.paths == tuple(paths) and approved.refreshed.problem is None
    assert decoded == []  # neither the approval nor the refresh decoded a result
    assert table(paths[0], "signed") == [["1", "approval", PRINCIPALS["kari"], "production",
                                          "2026-12-08T10:00:00+00:00", "verified", "-"]]
    exported = json.loads(paths[2].read_text(encoding="utf-8"))
    assert [(s["kind"], s["principal"], s["verified"]) for s in exported["promotion_path"]["signed"]] == [
        ("approval", PRINCIPALS["kari"], True)]
    assert (junit.stat().st_ino, junit.stat().st_mtime_ns, junit.read_bytes()) == written  # not written again
    assert (junit_record.stat().st_ino, junit_record.read_bytes()) == recorded  # nor its record
    assert [p.read_bytes() for p in paths] == whole(seeded)  # each file exactly what a whole render gives
    record = read_record(seeded.config, paths[0])
    assert record is not None and record.size == paths[0].stat().st_size
    assert b"<h2>Sandbox \xc3\x97 suite</h2>" == paths[0].read_bytes()[record.start:record.end][:25]


def test_a_promotion_moves_the_page_on_and_keeps_the_results(seeded: SeededLab, decoded: list[str]) -> None:
    refresh(seeded.config, seeded.store, seeded.build, AT)
    decoded.clear()
    with api.Lab(str(seeded.lab_yml)) as lab:
        promoted = api.promote(lab, BUILD, "pilot", now=AT)
    assert promoted.refreshed is not None and decoded == []
    page = promoted.refreshed.paths[0]
    assert table(page, "path")[1] == ["pilot", "promoted", "2026-12-01T10:00:00+00:00",
                                      f"campaign {seeded.campaign.id}"]
    assert json.loads(promoted.refreshed.paths[2].read_text())["standing"]["word"] == "IN PILOT"
    assert [p.read_bytes() for p in promoted.refreshed.paths] == whole(seeded)


def test_a_waiver_that_counts_renders_the_results_again_decoding_them_once(
        waivable: SeededLab, keys: dict[str, Path], decoded: list[str]) -> None:
    paths = refresh(waivable.config, waivable.store, waivable.build, AT)
    junit = etree.fromstring(paths[1].read_bytes())
    assert junit.find(".//testcase[@name='journal-health']/failure").get("type") == "fail"
    decoded.clear()
    with api.Lab(str(waivable.lab_yml)) as lab:
        api.waive(lab, BUILD, FAILING, "known issue in the journal, fixed in 2.0.1", "7d", keys["kari"], now=AT)
    assert decoded == [waivable.campaign.id]  # the results show the waiver: decoded, once for every format
    junit = etree.fromstring(paths[1].read_bytes())
    assert junit.find(".//testcase[@name='journal-health']/failure").get("type") == "waived"
    assert json.loads(paths[2].read_text())["counts"]["waived"] == 1
    assert [p.read_bytes() for p in paths] == whole(waivable)


def test_a_results_section_changed_on_disk_is_rendered_again(seeded: SeededLab, decoded: list[str]) -> None:
    paths = refresh(seeded.config, seeded.store, seeded.build, AT)
    record = read_record(seeded.config, paths[0])
    assert record is not None
    text = paths[0].read_bytes()
    at = text.index(b"pass", record.start)
    paths[0].write_bytes(text[:at] + b"fail" + text[at + 4:])  # same size, other bytes
    decoded.clear()
    refresh(seeded.config, seeded.store, seeded.build, AT)
    assert decoded == [seeded.campaign.id]
    assert [p.read_bytes() for p in paths] == whole(seeded)


def test_without_records_the_results_are_rendered_again(seeded: SeededLab, decoded: list[str]) -> None:
    paths = refresh(seeded.config, seeded.store, seeded.build, AT)
    for record in (seeded.config.state_dir / RECORDS).iterdir():
        record.unlink()
    paths[1].write_text("not JUnit")
    decoded.clear()
    refresh(seeded.config, seeded.store, seeded.build, AT)
    assert decoded == [seeded.campaign.id]
    assert [p.read_bytes() for p in paths] == whole(seeded)


def test_a_crash_while_the_results_are_copied_leaves_the_report_as_it_was(
        seeded: SeededLab, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = refresh(seeded.config, seeded.store, seeded.build, AT)
    before = [p.read_bytes() for p in paths]
    records = {p.name: p.read_bytes() for p in (seeded.config.state_dir / RECORDS).iterdir()}
    real = parts.section

    def dying(handle: object, record: parts.Record) -> Iterator[bytes]:
        yield next(real(handle, record))  # type: ignore[arg-type]
        raise KeyboardInterrupt  # the process dies half-way through the copy

    monkeypatch.setattr(parts, "section", dying)
    with pytest.raises(KeyboardInterrupt):
        refresh(seeded.config, seeded.store, seeded.build, parse_instant("2026-12-02T10:00:00Z"))
    assert [p.read_bytes() for p in paths] == before  # the page is the old one, whole
    left = sorted(p.name for p in seeded.config.reports_dir.iterdir())
    assert left == sorted([p.name for p in paths] + ["index.html"])  # no temporary file either
    assert {p.name: p.read_bytes() for p in (seeded.config.state_dir / RECORDS).iterdir()} == records
    monkeypatch.setattr(parts, "section", real)
    refresh(seeded.config, seeded.store, seeded.build, AT)
    assert [p.read_bytes() for p in paths] == whole(seeded)


def test_a_crash_between_a_report_and_its_record_is_caught_by_the_next_refresh(
        seeded: SeededLab, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch, decoded: list[str]) -> None:
    paths = refresh(seeded.config, seeded.store, seeded.build, AT)

    def dying(*args: object) -> None:
        raise KeyboardInterrupt  # the page is written, its record is not

    monkeypatch.setattr(parts, "keep_record", dying)
    with pytest.raises(KeyboardInterrupt), api.Lab(str(seeded.lab_yml)) as lab:
        api.approve(lab, BUILD, "production", keys["kari"], now=AT)
    monkeypatch.undo()
    monkeypatch.setattr(report_data, "now", lambda: GENERATED)
    refresh(seeded.config, seeded.store, seeded.build, AT)
    assert [p.read_bytes() for p in paths] == whole(seeded)
    assert "verified" in table(paths[0], "signed")[0]


def test_a_campaign_whose_cells_finish_during_the_refresh_is_written_from_one_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.config.labfile import load_lab
    from tests.support.labfiles import copy_default_lab

    config = load_lab(copy_default_lab(tmp_path / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    campaign = store.create_campaign(build, [("ts-sbx-01", "care-planner-smoke"), ("ts-sbx-02", "care-planner-smoke")],
                                     config.path)
    store.finish_cell(campaign.id, "ts-sbx-01", "care-planner-smoke", [Result("a", Status.PASS, "ok", {}, 1, 1)])
    real = Store.cells

    def finishing(self: Store, campaign_id: str) -> object:  # the other cell finishes as the results are read
        store.finish_cell(campaign_id, "ts-sbx-02", "care-planner-smoke", [Result("b", Status.FAIL, "no", {}, 1, 1)])
        return real(self, campaign_id)

    monkeypatch.setattr(Store, "cells", finishing)
    paths = refresh(config, store, build, AT)
    exported = json.loads(paths[2].read_text())
    assert [(c["sandbox"], c["state"], len(c["results"])) for c in exported["cells"]] == [
        ("ts-sbx-01", "done", 1), ("ts-sbx-02", "done", 1)]
    assert exported["counts"]["fail"] == 1  # the text around the results read the same cells
    assert "1 fail" in paths[0].read_text()


def test_the_results_key_follows_what_the_results_show_and_nothing_else(seeded: SeededLab) -> None:
    summary = summarise(seeded.config, seeded.store, seeded.campaign, AT)
    key = results_key(summary)
    later = summarise(seeded.config, seeded.store, seeded.campaign, parse_instant("2026-12-04T17:00:00Z"))
    assert results_key(later) == key  # another clock, another path: the same results
    assert results_key(replace(summary, seal=None, campaigns=(), lab_name="other")) == key
    assert results_key(replace(summary, verdict=replace(summary.verdict, waived=(FAILING,)))) != key
    assert results_key(replace(summary, notes=("TLS certificate validation is off",))) != key
    assert results_key(replace(summary, outcomes=summary.outcomes[1:])) != key
    assert results_key(replace(summary, mandatory={**summary.mandatory, "portfolio-compat": False})) != key
