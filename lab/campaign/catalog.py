"""Which build a reference names, and builds registered without lab.yml listing them (e.g. from CI).

A product with ``ci_builds`` in lab.yml takes new versions matching its pattern from
``lab build PRODUCT --version V --artifact FILE`` (the file is copied into the product's artifacts
directory) or ``--source DIR`` (the trees are packed as for a declared build). The store is the
register of those builds: ``PRODUCT@V`` then names them like a declared build, and
``PRODUCT@latest`` names the build of PRODUCT registered last.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from lab.campaign.builds import pack, sha256_file
from lab.config.labfile import LabConfig
from lab.errors import ConfigError, NotFoundError
from lab.evidence.store import Store
from lab.model import Build, BuildSpec, CiBuilds, Product
from lab.util.atomic import copy_hashed, write_bytes
from lab.util.versions import VERSION_TEXT, sorted_versions

LATEST = "latest"
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")


def product_of(config: LabConfig, name: str) -> Product:
    """The product ``name``; NotFoundError listing the products otherwise."""
    product = config.products.get(name)
    if product is None:
        raise NotFoundError(f"unknown product {name!r}; products in {config.path.name}: {', '.join(config.products)}")
    return product


def known_versions(product: Product, store: Store | None) -> list[str]:
    """The versions of ``product`` that lab.yml declares or the store (if any) has registered, in version order."""
    registered = store.builds(product.name) if store is not None else []
    return sorted_versions(set(product.builds) | {b.version for b in registered})


def resolve(config: LabConfig, store: Store | None, ref: str) -> BuildSpec:
    """The build ``ref`` names: ``PRODUCT@VERSION`` as lab.yml declares it or as it was registered in
    ``store`` (None: a lab that has stored nothing yet), or ``PRODUCT@latest``, the build of PRODUCT
    registered last. NotFoundError otherwise, listing the versions there are."""
    name, at, version = ref.partition("@")
    if not at or not version:
        raise NotFoundError(f"{ref!r} names no build; write PRODUCT@VERSION or PRODUCT@{LATEST}")
    if name not in config.products:
        config.build_spec(ref)  # raises, naming the builds lab.yml declares
    product = config.products[name]
    if version == LATEST:
        registered = store.builds(name) if store is not None else []
        if not registered:
            raise NotFoundError(f"{name} has no registered build, so {ref} names none; register one with "
                                f"`lab build {name}@VERSION` or `lab build {name} --version V --artifact FILE`")
        version = registered[-1].version
    if version in product.builds:
        return product.builds[version]
    build = store.build(name, version) if store is not None else None
    if build is not None:
        return BuildSpec(name, version, build.artifact, (), build.digest)
    versions = ", ".join(known_versions(product, store)) or "none yet"
    hint = (f"; register it with `lab build {name} --version {version} --artifact FILE` (or --source DIR)"
            if product.ci is not None and re.fullmatch(product.ci.versions, version) else "")
    raise NotFoundError(f"unknown build {ref!r}; versions of {name}: {versions}{hint}")


def check_new_version(config: LabConfig, product: Product, version: str) -> CiBuilds:
    """The product's ``ci_builds`` when ``version`` may be registered under it; ConfigError saying why not."""
    ci = product.ci
    if ci is None:
        raise ConfigError(f"product {product.name} takes no builds that lab.yml does not list; add "
                          f"`ci_builds: {{versions: REGEX}}` to it in lab.yml, or declare {version} under its builds",
                          source=str(config.path))
    if version == LATEST or not VERSION_TEXT.fullmatch(version):
        raise ConfigError(f"--version {version!r} is not a version: use letters, digits and . + _ - "
                          f"(e.g. 2.3.0+nightly.20261204), not {LATEST!r}")
    if not re.fullmatch(ci.versions, version):
        raise ConfigError(f"version {version!r} does not match {product.name}'s ci_builds.versions '{ci.versions}' "
                          f"in {config.path.name}; give a version of that form, or widen the pattern")
    if version in product.builds:
        raise ConfigError(f"{product.name}@{version} is declared in {config.path.name}; "
                          f"build it with `lab build {product.name}@{version}`")
    return ci


def suffix_of(name: str) -> str:
    """The file name's type suffix, archives whole: ``.tar.gz``, ``.msi``, or nothing."""
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return name[-len(suffix):]
    return Path(name).suffix


def refuse_other_digest(ref: str, registered: Build | None, digest: str) -> None:
    if registered is not None and registered.digest != digest:
        raise ConfigError(f"build {ref} is registered with sha256 {registered.digest}, but this artifact has "
                          f"{digest}; a build's identity is its digest: give the changed build a new version")


def register_new(config: LabConfig, store: Store, name: str, version: str, artifact: Path | None,
                 sources: Sequence[Path]) -> tuple[Build, bool]:
    """Register ``name@version``, a build lab.yml does not list, from the file ``artifact`` (copied into
    the product's artifacts directory) or the ``sources`` trees (packed, layered in order). Returns the
    build and whether it is newly registered.

    ConfigError, and nothing registered, when the product takes no such builds, the version does not
    match its pattern, the input is missing, or the version is registered with another digest.
    """
    product = product_of(config, name)
    ci = check_new_version(config, product, version)
    ref = f"{name}@{version}"
    if (artifact is None) == (not sources):
        raise ConfigError(f"lab build {name} --version {version}: give either --artifact FILE or --source DIR")
    registered = store.build(name, version)
    if artifact is not None:
        if not artifact.is_file():
            raise ConfigError(f"--artifact {artifact}: no such file; give the path of the built artifact")
        suffix = suffix_of(artifact.name)
        path, digest = copy_hashed(artifact, ci.artifacts, lambda d: f"{name}-{version}-{d[:12]}{suffix}")
        if registered is not None and registered.digest != digest:
            path.unlink(missing_ok=True)
    else:
        for source in sources:
            if not source.is_dir():
                raise ConfigError(f"--source {source}: no such directory; give the tree to pack")
        data = pack(list(sources))
        digest = hashlib.sha256(data).hexdigest()
        path = ci.artifacts / f"{name}-{version}-{digest[:12]}.tar.gz"
        if registered is None or registered.digest == digest:
            if not path.is_file() or sha256_file(path) != digest:
                write_bytes(path, data)
    refuse_other_digest(ref, registered, digest)
    build = store.register_build(name, version, digest, path)
    refuse_other_digest(ref, build, digest)  # another registration of the version won the race
    return build, registered is None
