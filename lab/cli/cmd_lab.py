"""``lab validate`` and ``lab build``: check the lab, register builds."""

from __future__ import annotations

import click

from lab.campaign.builds import build_and_register
from lab.cli.context import LabContext, pass_lab
from lab.config.rollout_plan import has_rollout, load_rollout_settings
from lab.decision.describe import describe_agreement, describe_rollout


@click.command()
@pass_lab
def validate(lab: LabContext) -> None:
    """Check lab.yml, the inventory, every suite and the agreement; print what the lab holds.

    Exits 0 when everything is valid, 2 with one message naming file:line otherwise.
    """
    config = lab.config
    # Everything is loaded before anything is printed: an error leaves no half listing behind.
    rollout = (describe_rollout(load_rollout_settings(config)) if has_rollout(config)
               else ["rollout: none (no rollout: section in the agreement; `lab rollout` is unavailable)"])
    lines = [f"lab {config.name}: {config.path}", f"  sandboxes ({len(config.sandboxes)}):"]
    lines += [f"    {spec.name:<16} platform {spec.platform:<14} provider {spec.provider}" for spec in config.sandboxes]
    lines.append(f"  suites ({len(config.suites)}):")
    for suite in config.suites.values():
        kind = "mandatory" if suite.mandatory else "advisory"
        lines.append(f"    {suite.name:<24} {len(suite.checks):>3} checks  {kind:<9} "
                     f"platforms {', '.join(suite.platforms)}")
    lines.append(f"  products ({len(config.products)}):")
    lines += [f"    {product.name}: builds {', '.join(product.builds)}; suites {', '.join(product.suites)}"
              for product in config.products.values()]
    lines.append(f"  agreement {config.agreement.name}: {' -> '.join(s.name for s in config.agreement.stages)}")
    lines += [f"    {line}" for line in [*describe_agreement(config.agreement), *rollout]]
    click.echo("\n".join([*lines, "valid"]))


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@pass_lab
def build(lab: LabContext, build_ref: str) -> None:
    """Pack a build from its source (if lab.yml gives one) and register its sha256 digest.

    The digest is the build's identity: the same version can never be registered with another
    digest, so what the lab tested is what gets deployed.
    """
    spec = lab.config.build_spec(build_ref)
    registered, new = build_and_register(spec, lab.store)
    state = "registered" if new else "already registered, unchanged"
    click.echo(f"{registered.ref}: {state}")
    click.echo(f"  artifact {registered.artifact}")
    click.echo(f"  sha256   {registered.digest}")
