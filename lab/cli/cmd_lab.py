"""``lab init``, ``lab validate`` and ``lab build``: start a lab, check it, register builds."""

from __future__ import annotations

from pathlib import Path

import click

from lab import api
from lab.cli.options import JSON, pass_lab
from lab.cli.render import print_error_json, print_json
from lab.errors import LabError


@click.command()
@JSON
@pass_lab
def validate(lab: api.Lab, as_json: bool) -> None:
    """Check lab.yml, the inventory, every suite and the agreement; print what the lab holds.

    Exits 0 when everything is valid, 2 with one message naming file:line otherwise (with --json,
    also a document with valid: false and the error).
    """
    # Everything is loaded before anything is printed: an error leaves no half listing behind.
    try:
        checked = api.validate(lab)
    except LabError as error:
        if as_json:
            print_error_json(error)
        raise
    if as_json:
        print_json(checked.to_json())
        return
    config = checked.config
    sources = ", ".join(str(source) for source in config.inventory.sources)
    lines = [f"lab {config.name}: {config.path}", f"  inventory: {sources} (resolved by Ansible)",
             f"  {config.ansible.describe()}", f"  sandboxes ({len(config.sandboxes)}):"]
    lines += [f"    {spec.name:<16} platform {spec.platform:<14} provider {spec.provider}" for spec in config.sandboxes]
    lines.append(f"  suites ({len(config.suites)}):")
    for suite in config.suites.values():
        kind = "mandatory" if suite.mandatory else "advisory"
        lines.append(f"    {suite.name:<24} {len(suite.checks):>3} checks  {kind:<9} "
                     f"platforms {', '.join(suite.platforms)}")
    lines.append(f"  products ({len(config.products)}):")
    for product in config.products.values():
        ci = f"; CI builds matching '{product.ci.versions}'" if product.ci is not None else ""
        lines.append(f"    {product.name}: builds {', '.join(product.builds) or 'none declared'}"
                     f"{ci}; suites {', '.join(product.suites)}")
    lines.append(f"  agreement {config.agreement.name}: {' -> '.join(s.name for s in config.agreement.stages)}")
    lines += [f"    {line}" for line in [*checked.agreement, *checked.rollout]]
    click.echo("\n".join([*lines, "valid"]))


@click.command()
@click.argument("build_ref", metavar="PRODUCT[@VERSION]")
@click.option("--version", "version", metavar="V",
              help="Register a new build of PRODUCT that lab.yml does not list, as version V (it must match "
                   "the product's ci_builds.versions), from --artifact or --source.")
@click.option("--artifact", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The built artifact to register (copied into the product's ci_builds.artifacts directory).")
@click.option("--source", "sources", multiple=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="A source tree to pack into the artifact; repeat to layer trees in order (a later one wins).")
@pass_lab
def build(lab: api.Lab, build_ref: str, version: str | None, artifact: Path | None, sources: tuple[Path, ...]) -> None:
    """Register a build by its sha256 digest, packing it from source where it comes from a source tree.

    \b
      lab build care-planner@2.0.0                     a build lab.yml declares
      lab build care-planner --version 2.3.0+nightly.20261204 --source DIR   tonight's build, from CI
      lab build care-planner --version 2.3.0+nightly.20261204 --artifact FILE

    The digest is the build's identity: the same version can never be registered with another
    digest, so what the lab tested is what gets deployed. `lab run PRODUCT@latest` runs the build
    registered last.
    """
    registration = api.build(lab, build_ref, version, artifact, sources)
    registered = registration.build
    state = "registered" if registration.new else "already registered, unchanged"
    click.echo(f"{registered.ref}: {state}")
    click.echo(f"  artifact {registered.artifact}")
    click.echo(f"  sha256   {registered.digest}")


@click.command()
@click.argument("directory", metavar="[DIR]", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Write a small working lab into DIR (default: here): one local sandbox, a product, a suite and an
    agreement, which `lab run` passes on. Refuses (exit 2, nothing written) where a file of it exists.
    """
    started = api.init(directory)
    click.echo(f"wrote a lab of {len(started.files)} files in {started.directory}:")
    for path in started.files:
        click.echo(f"  {path}")
    where = "" if started.directory == Path(".") else f" --lab {started.lab_file}"
    click.echo(f"next: lab{where} build hello@1.0.0 && lab{where} run hello@1.0.0")
