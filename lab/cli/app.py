"""The ``lab`` command group; each command lives in a module of its own."""

from __future__ import annotations

from pathlib import Path

import click

from lab import __version__, api
from lab.cli.cmd_approve import approve, waive
from lab.cli.cmd_audit import audit_group, evidence_group
from lab.cli.cmd_campaign import list_campaigns, report, resume, run, show
from lab.cli.cmd_lab import build, init, validate
from lab.cli.cmd_production import production
from lab.cli.cmd_promote import gate, promote
from lab.cli.cmd_rollout import rollout
from lab.cli.cmd_sandbox import sandbox
from lab.cli.cmd_selftest import selftest
from lab.cli.cmd_worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--lab", "lab_path", metavar="PATH", envvar="LAB_CONFIG",
              help="The lab file (or its directory). Default: ./lab.yml, or $LAB_CONFIG.")
@click.option("--provider", type=click.Choice(api.PROVIDER_NAMES), envvar="LAB_PROVIDER",
              help="Run every sandbox on this provider, whatever the inventory says "
                   "(e.g. the demo on namespace sandboxes; needs root).")
@click.option("--allowed-signers", "allowed_signers", metavar="FILE", envvar="LAB_ALLOWED_SIGNERS",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Verify approvals against this ALLOWED SIGNERS file instead of the agreement's "
                   "(trials and the demo; every decision and bundle records the override).")
@click.option("--checkpoint-key", "checkpoint_key", metavar="KEY", envvar="LAB_CHECKPOINT_KEY",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Seal the audit log (a signed checkpoint at every promotion and rollout end) with this SSH "
                   "private key instead of lab.yml's audit.checkpoint_key; allowed_signers must list it with "
                   'namespaces="lab-audit-checkpoint".')
@click.option("--vault-id", "vault_ids", multiple=True, metavar="[LABEL@]FILE",
              help="An Ansible vault secret (a password file or a script that prints it), as ansible-playbook "
                   "--vault-id takes it; repeatable. Given to the inventory and to every playbook run.")
@click.option("--vault-password-file", "vault_password_files", multiple=True, metavar="FILE",
              help="An Ansible vault password file, as ansible-playbook takes it; repeatable. "
                   "$ANSIBLE_VAULT_PASSWORD_FILE and ansible.cfg's vault settings work too.")
@click.option("--executor", type=click.Choice(api.EXECUTOR_KINDS), envvar="LAB_EXECUTOR",
              help="Run campaign cells and rollout shards in this process (inprocess) or on zone workers "
                   "(celery, as lab.yml's executor section sets it up). Default: lab.yml's, else inprocess.")
@click.version_option(__version__, prog_name="lab")
@click.pass_context
def cli(ctx: click.Context, lab_path: str | None, provider: str | None, allowed_signers: Path | None,
        checkpoint_key: Path | None, vault_ids: tuple[str, ...], vault_password_files: tuple[str, ...],
        executor: str | None) -> None:
    """lab: prove new builds on sandbox servers before they reach users, and promote only what passes.

    \b
    Typical flow:
      lab validate                        check lab.yml, inventory, suites and agreement
      lab build care-planner@2.0.0        pack the build and register its sha256 digest
      lab run care-planner@2.0.0          deploy to every sandbox, verify, report
      lab promote care-planner@2.0.0 --to pilot
    """
    session = api.Lab(lab_path, provider, allowed_signers, vault_ids, vault_password_files, executor,
                      checkpoint_key)
    ctx.obj = session
    ctx.call_on_close(session.close)


COMMANDS = (init, validate, build, run, resume, list_campaigns, show, report, gate, approve, waive, promote,
            audit_group, evidence_group, sandbox, selftest, rollout, production, worker)
for command in COMMANDS:
    cli.add_command(command)
