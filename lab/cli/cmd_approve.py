"""``lab approve`` and ``lab waive``: an approver's signed word on a build, with their SSH key.

The key stays where it is: lab hands its path to ``ssh-keygen -Y sign``, checks the signature
verifies against the agreement's allowed_signers, and records the signed payload, the armored
signature and the principal (never the key) with an audit entry.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from lab import api
from lab.cli.options import AS, BUILD_REF, KEY, NOW, pass_lab
from lab.cli.render import print_note, print_refresh


@click.command()
@BUILD_REF
@click.option("--to", "stage", required=True, help="The stage the approval is for (e.g. production).")
@KEY
@click.option("--reject", is_flag=True, help="Record a signed rejection instead: it blocks the build.")
@click.option("--expires", default="7d", show_default=True,
              help="When the approval lapses: a duration (7d, 48h), a date (valid through it) or a time.")
@AS
@NOW
@pass_lab
def approve(lab: api.Lab, build_ref: str, stage: str, key: Path, reject: bool, expires: str,
            principal: str | None, now: datetime | None) -> None:
    """Sign an approval (or, with --reject, a rejection) of a build into STAGE.

    The signature covers the build's digest, the digest of the evidence the gate uses now (its
    latest campaign, results and waivers), the stage, the expiry and your identity: if the
    evidence changes, the approval no longer counts. Exits 2 when the signature would not
    verify against allowed_signers (nothing is recorded).
    """
    signed = api.approve(lab, build_ref, stage, key, reject, expires, principal, now)
    print_note(signed.signers_note)
    word = "rejected" if signed.kind == "rejection" else "approved"
    click.echo(f"{signed.build.ref} {word} for {stage} by {signed.principal} (record #{signed.record_id}), "
               f"expires {signed.payload['expires']}")
    campaign = f", campaign {signed.campaign_id}" if signed.campaign_id else ""
    click.echo(f"  signed: build sha256 {signed.build.digest}, evidence sha256 {signed.payload['evidence_digest']}"
               f"{campaign}")
    print_refresh(signed.refreshed)


@click.command()
@BUILD_REF
@click.argument("target", metavar="SANDBOX/SUITE/CHECK")
@click.option("--reason", required=True, help="Why the failure is acceptable (recorded and signed).")
@click.option("--expires", required=True, help="Until when: a date (valid through it, e.g. 2026-12-31) or a time.")
@KEY
@AS
@NOW
@pass_lab
def waive(lab: api.Lab, build_ref: str, target: str, reason: str, expires: str, key: Path,
          principal: str | None, now: datetime | None) -> None:
    """Waive one failing check of a build, with a justification, your signature and an expiry.

    Only a check that failed in the build's latest campaign can be waived (an error or a
    missing cell cannot). Gates that allow waivers then do not count it as blocking; every
    report still shows it, as waived.
    """
    signed = api.waive(lab, build_ref, target, reason, expires, key, principal, now)
    print_note(signed.signers_note)
    click.echo(f"{target} of {signed.build.ref} waived by {signed.principal} (record #{signed.record_id}) until "
               f"{signed.payload['expires']}: {signed.payload['reason']}")
    print_refresh(signed.refreshed)
