"""Every provider lab knows, by name: the built-ins and those other packages register.

The built-in providers (``local``, ``namespace``, ``static``) are listed here. A provider that
ships as a package of its own (Proxmox, vSphere, ...) registers a ``Provider`` subclass (see
``lab.sandboxes.base``) under the entry-point group ``lab.providers``; its entry point's name is
the provider's name, as hosts give it in ``lab_provider``::

    # pyproject.toml of the package lab-proxmox
    [project.entry-points."lab.providers"]
    proxmox = "lab_proxmox.provider:ProxmoxProvider"

Installed in the same environment as lab, it is a provider like the built-ins: lab.yml's schema,
the inventory check, ``--provider`` and every command that brings up, resets or destroys hosts
accept it. Entry points are read once per process (``refresh`` reads them again); a package's
module is imported only when one of its hosts is used. Nothing here is repeated elsewhere: the
schema's enum, ``lab.config.labfile`` and the CLI ask ``provider_names()``.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lab.errors import ConfigError
from lab.sandboxes.base import SANDBOXES, LabSite, Provider
from lab.sandboxes.local import LocalProvider
from lab.sandboxes.namespace.provider import NamespaceProvider
from lab.sandboxes.static import StaticProvider

ENTRY_POINT_GROUP = "lab.providers"
BUILT_IN: dict[str, type[Provider]] = {
    "local": LocalProvider,
    "namespace": NamespaceProvider,
    "static": StaticProvider,
}


@dataclass(frozen=True)
class Registered:
    """A provider lab knows: its name, where it comes from and how to get its class."""

    name: str
    origin: str  # "built-in", or the distribution that registered it ("lab-proxmox 1.2.0")
    built_in: type[Provider] | None = None
    entry_point: importlib.metadata.EntryPoint | None = None

    def load(self) -> type[Provider]:
        """The provider's class; ConfigError naming the package when it cannot be imported or is no Provider."""
        if self.built_in is not None:
            return self.built_in
        assert self.entry_point is not None
        try:
            loaded = self.entry_point.load()
        except Exception as exc:  # any import error of a third-party package: reported, never a traceback
            raise ConfigError(f"provider {self.name!r} ({self.entry_point.value}, from {self.origin}) cannot be "
                              f"loaded: {type(exc).__name__}: {exc}; reinstall or fix that package") from None
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            raise ConfigError(f"provider {self.name!r} ({self.entry_point.value}, from {self.origin}) is not a "
                              "lab.sandboxes.base.Provider subclass; fix the package's lab.providers entry point")
        return loaded


@cache
def registered() -> dict[str, Registered]:
    """Every provider by name: the built-ins, then each ``lab.providers`` entry point, sorted by name.

    ConfigError when a package's entry point takes a built-in's name (it would silently change
    what that name means) or two packages register the same name.
    """
    found = {name: Registered(name, "built-in", built_in=cls) for name, cls in BUILT_IN.items()}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist
        origin = f"{dist.name} {dist.version}" if dist is not None else "an installed package"
        if point.name in found:
            raise ConfigError(f"provider name {point.name!r} of {origin} ({point.value}) is already taken by "
                              f"{found[point.name].origin}; rename its {ENTRY_POINT_GROUP} entry point")
        found[point.name] = Registered(point.name, origin, entry_point=point)
    return dict(sorted(found.items()))


def refresh() -> None:
    """Forget what was read, so the next question reads the entry points again (after installing a package)."""
    registered.cache_clear()


def provider_names() -> tuple[str, ...]:
    """The name of every provider lab knows, sorted."""
    return tuple(registered())


def provider_class(name: str) -> type[Provider]:
    """The class of provider ``name``; ConfigError naming the known providers when there is none."""
    entry = registered().get(name)
    if entry is None:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(provider_names())}")
    return entry.load()


def provider_for(name: str, state_dir: Path, site: LabSite | None = None, pool: str = SANDBOXES) -> Provider:
    """Provider ``name``, keeping its state under ``state_dir`` for hosts of ``pool``, with the lab's ``site``."""
    return provider_class(name)(state_dir, site, pool)
