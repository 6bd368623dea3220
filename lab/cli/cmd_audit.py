"""``lab audit show|verify`` and ``lab evidence [write]|verify``: the record, and the proof."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from lab import api
from lab.cli.options import BUILD_REF, JSON, NOW, pass_lab
from lab.cli.render import print_json
from lab.reports.data import printable

KIND_WIDTH = max(map(len, api.AUDIT_KINDS))


@click.group(name="audit")
def audit_group() -> None:
    """The audit log, hash-chained: every campaign, decision, approval, rejection, waiver, promotion, rollout step."""


@audit_group.command()
@click.option("--kind", type=click.Choice(api.AUDIT_KINDS), help="Only entries of this kind.")
@JSON
@pass_lab
def show(lab: api.Lab, kind: str | None, as_json: bool) -> None:
    """List the audit log's entries, oldest first: seq, time, kind, subject (with --json also payload and hashes)."""
    entries = api.audit_show(lab, kind)
    if as_json:
        print_json(entries.to_json())
        return
    for entry in entries:
        click.echo(f"{entry.seq:>5}  {entry.time:<29} {entry.kind:<{KIND_WIDTH}} {printable(entry.subject)}")


@audit_group.command(name="verify")
@JSON
@pass_lab
def verify_log(lab: api.Lab, as_json: bool) -> int:
    """Check the audit log: its chain, its signed checkpoints, and the state tables against it.

    The chain: no entry edited, removed or reordered (the first bad seq is named). The
    checkpoints: each signature verifies against allowed_signers, and the log still holds the
    entry each one sealed (a chain rewritten and recomputed, or cut back, is named with the seq
    and the checkpoint). The state tables: every promotion, approval, rejection, waiver and
    rollout (waves, hosts) agrees with the entry that recorded it. Exits 0 when all hold, 1
    naming each problem otherwise.
    """
    verdict = api.audit_verify(lab)
    if as_json:
        print_json(verdict.to_json())
        return 0 if verdict.ok else 1
    chain = verdict.chain
    if chain.ok:
        click.echo(f"audit log intact: {chain.entries} entries, head {chain.head}")
    else:
        click.echo(f"audit log BROKEN at seq {chain.first_bad}: {chain.problem}")
    after = f"; {verdict.unsealed} newer entr{'y is' if verdict.unsealed == 1 else 'ies are'} not sealed yet" \
        if verdict.sealed is not None and verdict.unsealed else ""
    click.echo(f"{printable(verdict.seal_line)}{after}")
    for finding in verdict.findings:
        click.echo(f"  BAD {printable(finding.problem)}")
    if verdict.findings:
        click.echo(f"audit log NOT verified: {len(verdict.findings)} problem(s) with its checkpoints or state tables")
    elif chain.ok:
        click.echo("state tables agree with the log: promotions, signed records, rollouts")
    return 0 if verdict.ok else 1


@audit_group.command(name="checkpoint")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="Sign with this SSH private key (default: audit.checkpoint_key in lab.yml).")
@click.option("--as", "principal", help="The principal allowed_signers lists for the key (default: found there).")
@pass_lab
def checkpoint(lab: api.Lab, key: Path | None, principal: str | None) -> None:
    """Seal the audit log's head now: sign its newest entry's seq and hash (ssh-keygen -Y sign).

    The signature must verify against allowed_signers in the namespace lab-audit-checkpoint
    (list the key with namespaces="lab-audit-checkpoint"); otherwise nothing is written (exit 2).
    """
    sealing = api.audit_checkpoint(lab, key, principal)
    click.echo(printable(sealing.line()))


class WriteByDefault(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``write``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["write", *args]
        return super().parse_args(ctx, args)


@click.group(name="evidence", cls=WriteByDefault)
def evidence_group() -> None:
    """The evidence bundle: `lab evidence PRODUCT@VERSION -o FILE` writes it, `lab evidence verify FILE` checks it."""


@evidence_group.command()
@BUILD_REF
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the bundle (JSON, written atomically).")
@NOW
@pass_lab
def write(lab: api.Lab, build_ref: str, output: Path, now: datetime | None) -> None:
    """Write one JSON file proving what was tested: build digest, file hashes, results, decisions, signatures."""
    written = api.evidence_write(lab, build_ref, output, now)
    click.echo(f"evidence bundle of {written.build_ref}: {written.path}")
    click.echo(f"  evidence sha256 {written.evidence_digest}, {written.signatures} signed record(s), "
               f"bundle sha256 {written.bundle_digest}")


@evidence_group.command(name="verify")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--allowed-signers", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Verify signatures against this file instead of the copy inside the bundle.")
def verify_evidence(path: Path, allowed_signers: Path | None) -> int:
    """Check an evidence bundle offline: hashes consistent, signatures valid. Exits 0 if so, 1 if not."""
    verdict = api.evidence_verify(path, allowed_signers)
    for note in verdict.notes:
        click.echo(f"  ok  {printable(note)}")
    for warning in verdict.warnings:
        click.echo(f"  --  {printable(warning)}")
    for problem in verdict.problems:
        click.echo(f"  BAD {printable(problem)}")
    word = "verified" if verdict.ok else "NOT verified"
    click.echo(f"{verdict.product}@{verdict.version} (sha256 {verdict.digest[:12]}…): evidence bundle {word}")
    return 0 if verdict.ok else 1
