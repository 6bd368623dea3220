"""The portfolio page, ``reports/index.html``: every product and build, where each stands now.

One row per build: its headline (``lab.reports.standing``: stage and state in words, icon and
colour), its latest campaign and rollout, with links to the build's page (its latest campaign's
report). Per product, trends of its campaigns (pass rate, failures, flaky checks, duration) as
inline SVG drawn at report time, and the checks that failed or were flaky in the most campaigns.
Self-contained: no JavaScript, no external resource. Re-written whenever a build's reports are.

Its cost grows with the builds and campaigns, not with the results: counts come from one SQL pass
(``lab.evidence.tallies``), and each build's gate is decided on its latest campaign only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lab.config.labfile import LabConfig
from lab.decision.gather import evidence_of
from lab.evidence.store import Store
from lab.evidence.tallies import (
    CampaignTally,
    TroubledCheck,
    campaign_tallies,
    troubled_checks,
)
from lab.model import Build
from lab.reports.data import ReportSummary
from lab.reports.html import environment
from lab.reports.path import PromotionPath, promotion_path
from lab.reports.standing import Standing, failing_checks, standing
from lab.reports.trends import Chart, product_charts
from lab.util.atomic import write_text
from lab.util.clock import current, iso, now

PAGE = "index.html"


@dataclass(frozen=True)
class BuildRow:
    """One build on the portfolio page."""

    build: Build
    standing: Standing
    path: PromotionPath | None  # None for a build of a product the lab file no longer has
    latest: CampaignTally | None


@dataclass(frozen=True)
class ProductSection:
    """One product: its builds (newest first), its trends and its most troubled checks."""

    name: str
    builds: tuple[BuildRow, ...]
    campaigns: int
    charts: tuple[Chart, ...]
    troubled: tuple[TroubledCheck, ...]


@dataclass(frozen=True)
class Portfolio:
    lab_name: str
    generated_at: str
    evaluated_at: str
    products: tuple[ProductSection, ...]

    @property
    def build_count(self) -> int:
        return sum(len(p.builds) for p in self.products)


def build_row(config: LabConfig, store: Store, build: Build, latest: CampaignTally | None,
              at: datetime, known: ReportSummary | None = None) -> BuildRow:
    """Where ``build`` stands at ``at``, with its latest campaign's counts (not judged when its
    product is no longer in the lab file: the gates need the product's suites). The latest
    campaign's outcomes are read once (no result's evidence), for its gate and for the failing
    checks its headline names; not at all when ``known`` is that campaign's report summary,
    decided at ``at``: its standing is the row's."""
    if (known is not None and latest is not None and known.campaign.id == latest.campaign.id
            and known.build == build and known.path.evaluated_at == iso(at)):
        return BuildRow(build, known.standing, known.path, latest)
    if build.product not in config.products:
        gone = Standing("NOT JUDGED", f"NOT JUDGED: {build.product} is not in {config.path.name}", "warn", "lab")
        return BuildRow(build, gone, None, latest)
    cells = store.outcomes(latest.campaign.id) if latest else []
    gathered = {latest.campaign.id: evidence_of(config, store, build, latest.campaign, cells)} if latest else None
    path = promotion_path(config, store, build, at, gathered)
    nxt = path.next_stage
    waived = nxt.decision.waived if nxt is not None and nxt.decision is not None else ()
    mandatory = {name: suite.mandatory for name, suite in config.suites.items()}
    return BuildRow(build, standing(path, failing_checks(cells, mandatory, waived)), path, latest)


def gather_portfolio(config: LabConfig, store: Store, at: datetime | None = None,
                     known: ReportSummary | None = None) -> Portfolio:
    """Every product of the lab and of the store, its builds as they stand at ``at`` (default: the
    clock), its campaigns' trends and troubled checks; ``known``: a build's report summary the caller
    gathered already (its build's row is taken from it rather than decided again)."""
    at = at or current()
    campaigns = store.campaigns()
    tallies = campaign_tallies(store, campaigns)
    latest = {(t.campaign.product, t.campaign.version, t.campaign.digest): t for t in tallies}  # oldest first
    builds = store.builds()
    names = sorted(set(config.products) | {b.product for b in builds})
    sections = []
    for name in names:
        mine = [t for t in tallies if t.campaign.product == name]
        rows = [build_row(config, store, b, latest.get((b.product, b.version, b.digest)), at, known)
                for b in builds if b.product == name]
        rows.reverse()  # newest registration first
        sections.append(ProductSection(name, tuple(rows), len(mine), tuple(product_charts(mine)),
                                       tuple(troubled_checks(store, name))))
    return Portfolio(config.name, now(), iso(at), tuple(sections))


def portfolio_html(portfolio: Portfolio) -> str:
    """The portfolio page as one self-contained HTML document."""
    return environment().get_template("portfolio.html.j2").render(p=portfolio)


def write_portfolio(config: LabConfig, store: Store, at: datetime | None = None,
                    known: ReportSummary | None = None) -> Path:
    """Write ``index.html`` in the lab's reports directory atomically (``known`` as for
    ``gather_portfolio``); its path."""
    target = config.reports_dir / PAGE
    write_text(target, portfolio_html(gather_portfolio(config, store, at, known)))
    return target
