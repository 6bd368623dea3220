"""``lab approve`` and ``lab waive``: an approver's signed word on a build, with their SSH key.

The key stays where it is: lab hands its path to ``ssh-keygen -Y sign``, checks the signature
verifies against the agreement's allowed_signers, and records the signed payload, the armored
signature and the principal (never the key) with an audit entry.
"""

from __future__ import annotations

from pathlib import Path

import click

from lab.campaign.builds import verified_build
from lab.cli.cmd_campaign import refresh_reports
from lab.cli.cmd_promote import NOW, note_override
from lab.cli.context import LabContext, pass_lab
from lab.decision.evaluate import evidence_digest
from lab.decision.gather import evidence_of, gated_stage, latest_campaign
from lab.errors import ConfigError
from lab.model import CellState, Status
from lab.signoff.approvals import approval_payload, sign_and_record, waiver_payload
from lab.signoff.signing import signer_identity
from lab.util.clock import current, parse_expiry

KEY = click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
                   help="Your SSH private key (its path only is given to ssh-keygen), e.g. ~/.ssh/id_ed25519.")
AS = click.option("--as", "principal", metavar="PRINCIPAL",
                  help="Who you are in allowed_signers; default: the one principal listed for the key.")


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--to", "stage", required=True, help="The stage the approval is for (e.g. production).")
@KEY
@click.option("--reject", is_flag=True, help="Record a signed rejection instead: it blocks the build.")
@click.option("--expires", default="7d", show_default=True,
              help="When the approval lapses: a duration (7d, 48h), a date (valid through it) or a time.")
@AS
@NOW
@pass_lab
def approve(lab: LabContext, build_ref: str, stage: str, key: Path, reject: bool, expires: str,
            principal: str | None, now_text: str | None) -> None:
    """Sign an approval (or, with --reject, a rejection) of a build into STAGE.

    The signature covers the build's digest, the digest of the evidence the gate uses now (its
    latest campaign, results and waivers), the stage, the expiry and your identity: if the
    evidence changes, the approval no longer counts. Exits 2 when the signature would not
    verify against allowed_signers (nothing is recorded).
    """
    config = lab.config
    now = current(now_text)
    expiry = parse_expiry(expires, now)
    build = verified_build(config.build_spec(build_ref), lab.store)
    gated_stage(config, stage)
    campaign = latest_campaign(lab.store, build)
    if campaign is None and not reject:
        raise ConfigError(f"nothing to approve: {build.ref} has no campaign; run `lab run {build.ref}` first")
    evidence = evidence_of(config, lab.store, build, campaign)
    signers = config.agreement.allowed_signers
    who = signer_identity(key.expanduser(), signers, principal)
    payload = approval_payload(build, stage, evidence_digest(evidence), campaign.id if campaign else None,
                               expiry, who, now, reject)
    record = sign_and_record(lab.store, build, payload, key.expanduser(), who, signers, now)
    note_override(config)
    word = "rejected" if reject else "approved"
    click.echo(f"{build.ref} {word} for {stage} by {who} (record #{record.id}), expires {payload['expires']}")
    click.echo(f"  signed: build sha256 {build.digest}, evidence sha256 {payload['evidence_digest']}"
               f"{f', campaign {campaign.id}' if campaign else ''}")
    refresh_reports(lab, build, now)


def parse_target(text: str) -> tuple[str, str, str]:
    """``sandbox/suite/check`` -> its three parts (the check id may itself contain ``/``)."""
    parts = text.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{text!r} is not SANDBOX/SUITE/CHECK (e.g. ts-sbx-01/portfolio-compat/journal-health)")
    return parts[0], parts[1], parts[2]


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.argument("target", metavar="SANDBOX/SUITE/CHECK")
@click.option("--reason", required=True, help="Why the failure is acceptable (recorded and signed).")
@click.option("--expires", required=True, help="Until when: a date (valid through it, e.g. 2026-12-31) or a time.")
@KEY
@AS
@NOW
@pass_lab
def waive(lab: LabContext, build_ref: str, target: str, reason: str, expires: str, key: Path,
          principal: str | None, now_text: str | None) -> None:
    """Waive one failing check of a build, with a justification, your signature and an expiry.

    Only a check that failed in the build's latest campaign can be waived (an error or a
    missing cell cannot). Gates that allow waivers then do not count it as blocking; every
    report still shows it, as waived.
    """
    config = lab.config
    now = current(now_text)
    expiry = parse_expiry(expires, now)
    if not reason.strip():
        raise ConfigError("a waiver needs a justification; say why with --reason \"...\"")
    build = verified_build(config.build_spec(build_ref), lab.store)
    sandbox, suite, check = parse_target(target)
    campaign = latest_campaign(lab.store, build)
    if campaign is None:
        raise ConfigError(f"nothing to waive: {build.ref} has no campaign")
    cell = next((c for c in lab.store.cells(campaign.id) if c.sandbox == sandbox and c.suite == suite), None)
    if cell is None or cell.state is not CellState.DONE:
        raise ConfigError(f"campaign {campaign.id} has no finished cell {sandbox}/{suite}")
    result = next((r for r in cell.results if r.check_id == check), None)
    if result is None or result.status is not Status.FAIL:
        found = "no such check" if result is None else f"its result is {result.status.value}"
        raise ConfigError(f"{target} cannot be waived ({found}); only a failed check can be")
    signers = config.agreement.allowed_signers
    who = signer_identity(key.expanduser(), signers, principal)
    payload = waiver_payload(build, (sandbox, suite, check), reason, expiry, who, now)
    record = sign_and_record(lab.store, build, payload, key.expanduser(), who, signers, now)
    note_override(config)
    click.echo(f"{target} of {build.ref} waived by {who} (record #{record.id}) until {payload['expires']}: "
               f"{payload['reason']}")
    refresh_reports(lab, build, now)
