"""Property: no evidence with a blocking defect is ever allowed, and evidence without one is.

Defects: a failing mandatory check without a valid waiver, an ``error``, a missing cell, a
digest mismatch, a required approval whose signature is invalid, expired, over other evidence
(or otherwise does not count), and a closed window or freeze. Around them, benign noise that
must never block: advisory failures, waivers of passing checks, approvals by outsiders or for
other stages, rejections that do not count. Hypothesis draws the defects and their variants;
the bulk of each scenario (results, times) comes from a drawn seed, which keeps 10,000 cases fast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.decision.evaluate import ApprovalFacts, CellFacts, Evidence, SuiteFacts, WaiverFacts, evaluate, evidence_digest
from lab.model import ApprovalRule, CellState, ClauseOutcome, Freeze, Gate, Stage, Status, Window
from lab.util.clock import iso

HELSINKI = ZoneInfo("Europe/Helsinki")
DIGEST = "d" * 64
PEOPLE = ("alice", "bob", "carol")
STAGE = Stage("production", None, "", "pilot",
              (Window((0, 1, 2, 3, 4), time(18), time(6), "Europe/Helsinki"),
               Window((5, 6), time(0), time(0), "Europe/Helsinki", end_of_day=True)),
              (Freeze(date(2026, 12, 20), date(2027, 1, 6), "Europe/Helsinki", "year-end"),))
DEFECTS = ("fail", "error", "missing", "digest", "signature", "window")
BAD_SIGNATURES = ("unverified", "expired", "other-evidence", "other-build", "outsider")
FAIL_WAIVERS = ("none", "unverified", "expired", "other-build", "outsider", "not-allowed")
ERROR_WAIVERS = ("none", "valid")
CLOSED_KINDS = ("daytime", "monday-night", "freeze")
EXPECTED_CLAUSE = {"fail": "mandatory checks", "error": "no errors", "missing": "platform debian-12",
                   "digest": "digest", "signature": "approvals", "window": "window"}


@dataclass(frozen=True)
class Plan:
    """One scenario: the defects, their variants, the shape, and a seed for the rest."""

    defects: frozenset[str]
    fail_waiver: str
    error_waiver: str
    bad_signature: str
    window: str  # which kind of closed moment, when the window is a defect
    waivers_allowed: bool
    approvals_needed: int
    sandboxes: int
    suites: int
    max_flaky: int
    seed: int


def plan_of(mask: int, seed: int) -> Plan:
    """The plan for a defect bit ``mask`` (bit i: ``DEFECTS[i]``) and ``seed``: Hypothesis draws two
    integers (cheap, and shrinking the mask towards 0 means fewer defects); the variants follow the seed."""
    rng = random.Random(seed)
    return Plan(frozenset(d for i, d in enumerate(DEFECTS) if mask >> i & 1), rng.choice(FAIL_WAIVERS),
                rng.choice(ERROR_WAIVERS), rng.choice(BAD_SIGNATURES), rng.choice(CLOSED_KINDS), rng.random() < 0.5,
                rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 3), rng.randint(0, 2), seed)


PLANS = st.builds(plan_of, st.integers(0, 2 ** len(DEFECTS) - 1), st.integers(0, 2**32 - 1))


def local(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), HELSINKI).astimezone(UTC)


def open_instant(rng: random.Random) -> datetime:
    """A moment inside a window and outside the freeze: a weekend, or a weekday evening/night, in 2027.

    A weekday's window opens at 18:00 and closes at 06:00 the next day, so Monday before 06:00 is closed.
    """
    day = date(2027, 1, 11) + timedelta(days=rng.randint(0, 300))
    if day.weekday() >= 5:
        return local(day, rng.randint(0, 23), rng.randint(0, 59))
    hours = [18, 19, 20, 21, 22, 23] + ([] if day.weekday() == 0 else [0, 1, 2, 3, 4, 5])
    return local(day, rng.choice(hours), rng.randint(0, 59))


def closed_instant(rng: random.Random, kind: str) -> datetime:
    """A weekday daytime moment (06:00-17:59 Helsinki), Monday before 06:00, or any moment of the freeze."""
    if kind == "monday-night":
        return local(date(2027, 1, 18) + timedelta(weeks=rng.randint(0, 40)), rng.randint(0, 5), rng.randint(0, 59))
    if kind == "daytime":
        day = date(2027, 1, 18) + timedelta(weeks=rng.randint(0, 40), days=rng.randint(0, 4))
        return local(day, rng.randint(6, 17), rng.randint(0, 59))
    return local(date(2026, 12, 20) + timedelta(days=rng.randint(0, 17)), rng.randint(0, 23), rng.randint(0, 59))


def waiver(rng: random.Random, number: int, target: tuple[str, str, str], variant: str, now: datetime) -> WaiverFacts:
    """A waiver of ``target``; valid unless ``variant`` says how it is not."""
    later = now + timedelta(seconds=rng.randint(1, 10**6))
    expires = now - timedelta(seconds=rng.randint(0, 10**6)) if variant == "expired" else later
    return WaiverFacts(number, "mallory" if variant == "outsider" else rng.choice(PEOPLE), *target,
                       "e" * 64 if variant == "other-build" else DIGEST, "accepted risk", iso(expires),
                       variant != "unverified", "signature does not verify" if variant == "unverified" else "")


def scenario(plan: Plan) -> tuple[Gate, Evidence, datetime]:
    """Evidence that is clean except for exactly ``plan.defects``, plus benign noise."""
    rng = random.Random(plan.seed)
    defects = plan.defects
    now = closed_instant(rng, plan.window) if "window" in defects else open_instant(rng)
    sandboxes = {f"sbx-{i}": "debian-12" for i in range(1, plan.sandboxes + 1)}
    names = [f"suite-{i}" for i in range(plan.suites)]
    suites = {n: SuiteFacts(n, True, ("debian-12",)) for n in names}
    suites["advisory"] = SuiteFacts("advisory", False, ("any",))
    cells: dict[tuple[str, str], CellFacts] = {}
    flaky_left = plan.max_flaky
    for sandbox in sandboxes:
        for suite in names:
            statuses = []
            for _ in range(rng.randint(1, 4)):
                status = rng.choice((Status.PASS, Status.PASS, Status.SKIP, Status.FLAKY))
                if status is Status.FLAKY and flaky_left == 0:
                    status = Status.PASS
                flaky_left -= status is Status.FLAKY
                statuses.append(status)
            cells[(sandbox, suite)] = CellFacts(sandbox, suite, CellState.DONE, tuple(statuses),
                                                tuple(f"check-{i}" for i in range(len(statuses))))
        noise = tuple(rng.choice(list(Status)) for _ in range(rng.randint(0, 3)))  # advisory: never blocks
        cells[(sandbox, "advisory")] = CellFacts(sandbox, "advisory", CellState.DONE, noise,
                                                 tuple(f"a-{i}" for i in range(len(noise))))
    required = sorted(k for k in cells if k[1] != "advisory")
    waivers: list[WaiverFacts] = []
    waivers_allowed = plan.waivers_allowed
    for defect, variant in (("fail", plan.fail_waiver), ("error", plan.error_waiver)):
        if defect not in defects:
            continue
        key = rng.choice(required)  # one more result, so defects never overwrite each other
        check = f"{defect}-check"
        status = Status.FAIL if defect == "fail" else Status.ERROR
        cells[key] = replace(cells[key], statuses=(*cells[key].statuses, status),
                             check_ids=(*cells[key].check_ids, check))
        if variant == "not-allowed":
            waivers_allowed = False
        if variant != "none":
            target = (key[0], key[1], check)
            waivers.append(waiver(rng, len(waivers) + 1, target, "valid" if variant == "not-allowed" else variant, now))
    if rng.random() < 0.5:  # benign: a valid waiver of a passing check waives nothing and blocks nothing
        sandbox, suite = rng.choice(required)
        waivers.append(waiver(rng, len(waivers) + 1, (sandbox, suite, "check-0"), "valid", now))
    if "missing" in defects:  # a sandbox of the campaign whose cells never ran or never finished
        sandboxes["sbx-9"] = "debian-12"
        state = rng.choice((None, CellState.PENDING, CellState.RUNNING))
        for suite in names if state is not None else ():
            cells[("sbx-9", suite)] = CellFacts("sbx-9", suite, state, ())
    deployed: dict[str, str | None] = dict.fromkeys(sandboxes, DIGEST)
    if "digest" in defects:
        deployed[rng.choice(sorted(sandboxes))] = rng.choice((None, "f" * 64, DIGEST[:-1] + "0"))
    entered = {"lab": iso(now - timedelta(days=30)),
               "pilot": iso(now - timedelta(hours=48, seconds=rng.randint(0, 10**6)))}
    evidence = Evidence("app@1.0", DIGEST, "c-1", True, sandboxes, deployed, suites, tuple(cells.values()),
                        entered, (), tuple(waivers))
    current = evidence_digest(evidence)
    people = rng.sample(PEOPLE, plan.approvals_needed)
    approvals = [ApprovalFacts(i + 1, who, False, "production", DIGEST, current,
                               iso(now + timedelta(seconds=rng.randint(1, 10**6))), True)
                 for i, who in enumerate(people)]
    if "signature" in defects:
        index = rng.randrange(len(approvals))
        bad = approvals[index]
        approvals[index] = {
            "unverified": replace(bad, signature_valid=False, problem="signature does not verify"),
            "expired": replace(bad, expires=iso(now - timedelta(seconds=rng.randint(0, 10**6)))),
            "other-evidence": replace(bad, evidence_digest="0" * 64),
            "other-build": replace(bad, build_digest="e" * 64),
            "outsider": replace(bad, principal="mallory"),
        }[plan.bad_signature]
    tomorrow = iso(now + timedelta(days=1))
    approvals += [  # benign: records that neither count nor block
        ApprovalFacts(90, "mallory", rng.random() < 0.5, "production", DIGEST, current, tomorrow, True),
        ApprovalFacts(91, rng.choice(PEOPLE), True, "pilot", DIGEST, current, tomorrow, True),
        ApprovalFacts(92, rng.choice(PEOPLE), True, "production", DIGEST, current, tomorrow, False, "bad signature"),
    ]
    gate = Gate(("debian-12",), None, plan.max_flaky, None, 48 * 3600,
                ApprovalRule(PEOPLE, plan.approvals_needed, True, "board"), waivers_allowed, PEOPLE)
    return gate, replace(evidence, approvals=tuple(approvals)), now


@settings(deadline=None)  # examples: the Hypothesis profile's (tests/conftest.py): 10,000 in `ci`, what CI runs
@given(PLANS)
def test_evidence_is_allowed_exactly_when_it_has_no_blocking_defect(plan: Plan) -> None:
    gate, evidence, now = scenario(plan)
    verdict = evaluate(gate, STAGE, evidence, now)
    outcomes = {c.name: c.outcome for c in verdict.clauses}
    assert verdict.allowed is (not plan.defects), (sorted(plan.defects), verdict.reasons)
    for defect in plan.defects:
        assert outcomes[EXPECTED_CLAUSE[defect]] is ClauseOutcome.NOT_MET, (defect, verdict.reasons)
    if "window" in plan.defects:
        assert verdict.next_open is not None and verdict.next_open > verdict.evaluated_at
    assert verdict.evidence_digest == evidence_digest(evidence)


def test_the_scenarios_reach_every_defect_and_the_clean_case() -> None:
    clean = Plan(frozenset(), "none", "none", "expired", "daytime", True, 2, 2, 2, 1, 7)
    gate, evidence, now = scenario(clean)
    assert evaluate(gate, STAGE, evidence, now).allowed is True
    for defect in DEFECTS:
        gate, evidence, now = scenario(replace(clean, defects=frozenset({defect})))
        verdict = evaluate(gate, STAGE, evidence, now)
        assert verdict.allowed is False
        assert [c.name for c in verdict.clauses if c.outcome is ClauseOutcome.NOT_MET] == [EXPECTED_CLAUSE[defect]]
