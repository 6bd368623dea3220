"""``lab validate`` and ``lab build``: check the lab, register builds."""

from __future__ import annotations

import click

from lab import api
from lab.cli.options import BUILD_REF, pass_lab


@click.command()
@pass_lab
def validate(lab: api.Lab) -> None:
    """Check lab.yml, the inventory, every suite and the agreement; print what the lab holds.

    Exits 0 when everything is valid, 2 with one message naming file:line otherwise.
    """
    # Everything is loaded before anything is printed: an error leaves no half listing behind.
    checked = api.validate(lab)
    config = checked.config
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
    lines += [f"    {line}" for line in [*checked.agreement, *checked.rollout]]
    click.echo("\n".join([*lines, "valid"]))


@click.command()
@BUILD_REF
@pass_lab
def build(lab: api.Lab, build_ref: str) -> None:
    """Pack a build from its source (if lab.yml gives one) and register its sha256 digest.

    The digest is the build's identity: the same version can never be registered with another
    digest, so what the lab tested is what gets deployed.
    """
    registration = api.build(lab, build_ref)
    registered = registration.build
    state = "registered" if registration.new else "already registered, unchanged"
    click.echo(f"{registered.ref}: {state}")
    click.echo(f"  artifact {registered.artifact}")
    click.echo(f"  sha256   {registered.digest}")
