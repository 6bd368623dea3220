"""Counts over many campaigns, for trends: one SQL pass per question, no result's evidence decoded.

``campaign_tallies`` gives each campaign's results by status and its duration; ``troubled_checks``
the checks that failed, errored or were flaky in the most campaigns. The portfolio page draws
its trends from them, so its cost grows with the number of campaigns, not of results decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lab.evidence.store import Store
from lab.model import Campaign


@dataclass(frozen=True)
class CampaignTally:
    """One campaign's results counted by status (``pass``, ``fail``, ...) and how long it ran."""

    campaign: Campaign
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def judged(self) -> int:
        """Results that passed or did not (skips left out)."""
        return self.total - self.counts.get("skip", 0)

    @property
    def pass_rate(self) -> float | None:
        """Share of judged results that passed (flaky counts as passed, as the gate counts it)."""
        if not self.judged:
            return None
        return (self.counts.get("pass", 0) + self.counts.get("flaky", 0)) / self.judged

    @property
    def failures(self) -> int:
        return self.counts.get("fail", 0) + self.counts.get("error", 0)

    @property
    def duration_s(self) -> float | None:
        if not self.campaign.finished_at:
            return None
        started = datetime.fromisoformat(self.campaign.created_at)
        return (datetime.fromisoformat(self.campaign.finished_at) - started).total_seconds()


@dataclass(frozen=True)
class TroubledCheck:
    """A check that failed, errored or was flaky: in how many campaigns, and in which way most recently."""

    suite: str
    check_id: str
    campaigns: int
    fails: int
    flaky: int
    last_campaign: str


def campaign_tallies(store: Store, campaigns: list[Campaign]) -> list[CampaignTally]:
    """Each of ``campaigns`` with its results counted by status, in the order given."""
    counts: dict[str, dict[str, int]] = {c.id: {} for c in campaigns}
    with store.reading() as db:
        rows = db.execute("SELECT campaign_id, status, COUNT(*) FROM results GROUP BY campaign_id, status").fetchall()
    for campaign_id, status, number in rows:
        if campaign_id in counts:
            counts[campaign_id][status] = number
    return [CampaignTally(c, counts[c.id]) for c in campaigns]


def troubled_checks(store: Store, product: str, limit: int = 8) -> list[TroubledCheck]:
    """The ``limit`` checks of ``product``'s campaigns that failed, errored or were flaky in the most
    campaigns (ties: the most recent first)."""
    with store.reading() as db:
        rows = db.execute(
            """SELECT r.suite, r.check_id, COUNT(DISTINCT r.campaign_id) AS campaigns,
                       SUM(CASE WHEN r.status IN ('fail', 'error') THEN 1 ELSE 0 END) AS fails,
                       SUM(CASE WHEN r.status = 'flaky' THEN 1 ELSE 0 END) AS flaky,
                       MAX(c.created_at || ' ' || c.id) AS last
                FROM results r JOIN campaigns c ON c.id = r.campaign_id
                WHERE c.product = ? AND r.status IN ('fail', 'error', 'flaky')
                GROUP BY r.suite, r.check_id
                ORDER BY campaigns DESC, last DESC, r.suite, r.check_id LIMIT ?""",
            (product, limit)).fetchall()
    return [TroubledCheck(suite, check, campaigns, fails, flaky, last.rsplit(" ", 1)[-1])
            for suite, check, campaigns, fails, flaky, last in rows]


