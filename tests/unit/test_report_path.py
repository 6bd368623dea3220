"""The report's promotion path: every stage of the agreement, the decision now for the next one,
the build's signed records and its production rollout."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from lxml import html

from lab import approvals, signing
from lab.canonical import canonical_bytes
from lab.clock import parse_instant
from lab.reports import refresh
from lab.reports.data import printable
from tests.unit.lab_fixtures import PRINCIPALS, T0, SeededLab

MALLORY = PRINCIPALS["mallory"]
HOSTILE_PRINCIPAL = "<script>alert('p')</script>&\"@evil.example"
HOSTILE_REASON = "<img src=x onerror=alert(1)> ]]> \x00 NUL \x1b[31mred\x1b[0m & \"quotes\""


def table(page: html.HtmlElement, css_class: str) -> list[list[str]]:
    """The text of every data cell of the table of ``css_class``, row by row (header row left out)."""
    found = page.find_class(css_class)
    assert len(found) == 1, f"{len(found)} table(s) of class {css_class}"
    return [[" ".join("".join(td.itertext()).split()) for td in tr.findall("td")]
            for tr in found[0].findall("tr") if tr.findall("td")]


def read_page(path: Path) -> html.HtmlElement:
    return html.fromstring(path.read_text(encoding="utf-8"))


def test_unverifiable_records_are_marked_and_hostile_text_is_escaped(seeded: SeededLab, keys: dict[str, Path]) -> None:
    at = parse_instant(T0)
    expires = at + timedelta(days=7)
    # Signed with mallory's key, which allowed_signers does not list: recorded as given, never verified.
    approval = approvals.approval_payload(seeded.build, "production", "0" * 64, seeded.campaign.id, expires,
                                          HOSTILE_PRINCIPAL, at, False)
    approvals.record(seeded.store, seeded.build, approval, signing.sign(canonical_bytes(approval), keys["mallory"]),
                     HOSTILE_PRINCIPAL, at)
    target = ("ts-sbx-01", "portfolio-compat", "journal-health")
    waiver = approvals.waiver_payload(seeded.build, target, HOSTILE_REASON, expires, MALLORY, at)
    approvals.record(seeded.store, seeded.build, waiver, signing.sign(canonical_bytes(waiver), keys["mallory"]),
                     MALLORY, at)

    paths = refresh(seeded.config, seeded.store, seeded.build, at)
    assert [p.name for p in paths] == [f"{seeded.campaign.id}{s}" for s in (".html", ".junit.xml", ".json")]
    text = paths[0].read_text()
    assert "<script" not in text and "<img" not in text and "\x00" not in text and "\x1b" not in text
    assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;&amp;&#34;@evil.example" in text
    rows = table(read_page(paths[0]), "signed")
    assert [row[:5] for row in rows] == [
        ["1", "approval", HOSTILE_PRINCIPAL, "production", "2026-12-08T10:00:00+00:00"],
        ["2", "waiver", MALLORY, "-", "2026-12-08T10:00:00+00:00"]]
    assert rows[0][5].startswith(f"not verified: signature does not verify as {HOSTILE_PRINCIPAL} against "
                                 "allowed_signers: ")
    assert rows[1][5].startswith(f"not verified: signature does not verify as {MALLORY} against allowed_signers: ")
    assert rows[1][6] == " ".join(f"ts-sbx-01/portfolio-compat/journal-health: {printable(HOSTILE_REASON)}".split())
    signed = json.loads(paths[2].read_text())["promotion_path"]["signed"]
    assert [(s["kind"], s["principal"], s["verified"], s["waives"], s["reason"]) for s in signed] == [
        ("approval", HOSTILE_PRINCIPAL, False, None, None),
        ("waiver", MALLORY, False, "ts-sbx-01/portfolio-compat/journal-health", HOSTILE_REASON.strip())]


def test_the_latest_rollout_of_the_build_is_shown_compactly(seeded: SeededLab) -> None:
    b = seeded.build
    with seeded.store.transaction() as db:  # a canary wave that halted and was rolled back, as the store keeps it
        db.execute("INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?)",
                   ("r1", b.product, b.version, b.digest, "production", "halted", T0, T0, T0,
                    "halted in wave 1 (canary): 1 of 1 host(s) failed <health>"))
        for index, name, state, hosts in ((1, "canary", "rolled_back", ("prod-ts-01",)),
                                          (2, "early", "cancelled", ("prod-ts-02", "prod-ts-03"))):
            db.execute("INSERT INTO rollout_waves VALUES (?,?,?,?,?,?,?,NULL,NULL,NULL,?)",
                       ("r1", index, name, state, 0, None, 0, "rolled back" if index == 1 else ""))
            db.executemany("INSERT INTO rollout_hosts VALUES (?,?,?,?,?,NULL,NULL,NULL,'',?)",
                           [("r1", index, host, n, state, T0) for n, host in enumerate(hosts)])
    paths = refresh(seeded.config, seeded.store, seeded.build, parse_instant(T0))
    page = read_page(paths[0])
    assert ("Rollout r1 into production: halted - halted in wave 1 (canary): 1 of 1 host(s) failed <health>"
            in " ".join(page.text_content().split()))
    assert table(page, "rollout") == [["1 canary", "1: prod-ts-01", "rolled_back", "rolled back"],
                                      ["2 early", "2: prod-ts-02, prod-ts-03", "cancelled", ""]]
    assert json.loads(paths[2].read_text())["promotion_path"]["rollout"] == {
        "id": "r1", "state": "halted", "detail": "halted in wave 1 (canary): 1 of 1 host(s) failed <health>",
        "created_at": T0, "finished_at": T0,
        "waves": [{"wave": 1, "name": "canary", "state": "rolled_back", "hosts": ["prod-ts-01"],
                   "detail": "rolled back"},
                  {"wave": 2, "name": "early", "state": "cancelled", "hosts": ["prod-ts-02", "prod-ts-03"],
                   "detail": ""}]}
