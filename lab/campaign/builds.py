"""Builds: pack a build's source into a reproducible artifact, and register it by digest.

The digest is the build's identity from the lab to production: what was tested is what is
deployed, byte for byte. Packing is deterministic (sorted entries, fixed times and owners), so
the same source always gives the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from lab.errors import ConfigError, NotFoundError
from lab.evidence.store import Store
from lab.model import Build, BuildSpec
from lab.util.atomic import write_bytes

FIXED_MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z: packing must not depend on file times


def sha256_file(path: Path) -> str:
    """The hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pack(sources: list[Path]) -> bytes:
    """A gzipped tar of the source trees, layered in order (a later tree's file wins)."""
    files: dict[str, tuple[Path, int]] = {}
    for source in sources:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(source).as_posix()] = (path, 0o755 if os.access(path, os.X_OK) else 0o644)
    return pack_tree(files)


def pack_tree(files: Mapping[str, tuple[Path, int]], directories: Iterable[str] = ()) -> bytes:
    """A reproducible gzipped tar: ``files`` (archive name -> (file to read, mode)) and the extra
    ``directories`` (archive names, e.g. empty ones), each directory entry (0755) before what it holds.

    Promises: the same names, contents and modes always give the same bytes (sorted entries, fixed
    times, owner root 0/0), so the bytes' sha256 identifies the content.
    """
    leaves = {name: files.get(name) for name in [*files, *directories]}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(leaves):
            leaf = leaves[name]
            parts = name.split("/") if leaf is None else name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in dirs:
                    dirs.add(directory)
                    tar.addfile(entry(directory, tarfile.DIRTYPE, 0o755, 0))
            if leaf is not None:
                data = leaf[0].read_bytes()
                tar.addfile(entry(name, tarfile.REGTYPE, leaf[1], len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def entry(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_and_register(spec: BuildSpec, store: Store) -> tuple[Build, bool]:
    """Pack the build's sources (if any), check the digest, register it. Returns (build, newly registered).

    Nothing is written when the result would contradict what is registered or pinned.
    """
    data: bytes | None = None
    if spec.sources:
        data = pack(list(spec.sources))
        digest = hashlib.sha256(data).hexdigest()
    elif spec.artifact.is_file():
        digest = sha256_file(spec.artifact)
    else:
        raise ConfigError(f"build {spec.ref}: artifact {spec.artifact} not found and no source to build it from; "
                          "add the artifact or a 'source' in lab.yml")
    if spec.sha256 and digest != spec.sha256:
        raise ConfigError(f"build {spec.ref}: the artifact's sha256 is {digest}, but lab.yml pins {spec.sha256}; "
                          "fix the pin if the new artifact is intended, or restore the artifact",
                          source=str(spec.declared_in or "lab.yml"), line=spec.line)
    known = store.build(spec.product, spec.version)
    if known is not None and known.digest != digest:
        raise ConfigError(f"build {spec.ref} is registered with sha256 {known.digest}, but its artifact now has "
                          f"{digest}; a build's identity is its digest: give the changed artifact a new version")
    if data is not None and (not spec.artifact.exists() or sha256_file(spec.artifact) != digest):
        write_bytes(spec.artifact, data)
    return store.register_build(spec.product, spec.version, digest, spec.artifact), known is None


def registered_build(spec: BuildSpec, store: Store) -> Build:
    """The build registered for ``spec`` (its artifact not re-hashed); NotFoundError if there is none."""
    build = store.build(spec.product, spec.version)
    if build is None:
        raise NotFoundError(f"build {spec.ref} is not registered; run `lab build {spec.ref}` first")
    return build


def verified_build(spec: BuildSpec, store: Store) -> Build:
    """The registered build for ``spec`` whose artifact still has the registered digest."""
    build = registered_build(spec, store)
    if not build.artifact.is_file():
        raise ConfigError(f"build {spec.ref}: artifact {build.artifact} is missing; restore it or rebuild with "
                          f"`lab build {spec.ref}`")
    found = sha256_file(build.artifact)
    if found != build.digest:
        raise ConfigError(f"build {spec.ref}: artifact {build.artifact} has sha256 {found}, but the build was "
                          f"registered as {build.digest}; the artifact changed since registration. Restore it, "
                          "or register the new artifact under a new version")
    return build
