"""Load and validate a lab: lab.yml, its inventory, its suites and its agreement.

Everything is checked before anything runs; each error names the file and line (or the value)
and what to do about it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ansible.settings import AnsibleSettings, ansible_settings
from lab.checks.manifest import VARIABLE
from lab.checks.types.linux import CHECK_TYPES, COMMON_FIELDS
from lab.checks.types.windows import WINDOWS_CHECK_TYPES, case_clashes
from lab.config.agreement import load_agreement
from lab.config.allowed_signers import override_signers
from lab.config.inventory import Inventory, load_inventory
from lab.config.schemas import schema, validate
from lab.errors import ConfigError, NotFoundError
from lab.model import Agreement, BuildSpec, Check, CiBuilds, Product, SandboxSpec, Suite
from lab.sandboxes.registry import provider_names
from lab.util.yamlfile import line_of, load_yaml, plain

PROVIDER_FACTS = frozenset({"lab_port", "sandbox_root", "sandbox_name"})
DEFAULT_LAB_FILE = "lab.yml"
# The providers known when lab was imported, for fixed choices (the CLI's --provider); checks ask
# lab.sandboxes.registry.provider_names(), which reads the registry now.
PROVIDER_NAMES = provider_names()


@dataclass(frozen=True)
class Timeouts:
    suite: float = 300.0
    check: float = 30.0
    lease: float = 120.0
    playbook: float = 900.0


@dataclass(frozen=True)
class LabConfig:
    """A whole lab, validated."""

    path: Path
    name: str
    root: Path
    state_dir: Path
    reports_dir: Path
    parallel: int
    inventory: Inventory
    ansible: AnsibleSettings
    sandboxes: tuple[SandboxSpec, ...]
    baseline: Path | None
    products: dict[str, Product]
    suites: dict[str, Suite]
    agreement: Agreement
    timeouts: Timeouts

    def build_spec(self, ref: str) -> BuildSpec:
        """The build named ``product@version``; NotFoundError listing what exists otherwise."""
        product_name, _, version = ref.partition("@")
        product = self.products.get(product_name)
        if product is None or not version:
            known = ", ".join(f"{b.ref}" for p in self.products.values() for b in p.builds.values())
            raise NotFoundError(f"unknown build {ref!r}; builds in {self.path.name}: {known}")
        spec = product.builds.get(version)
        if spec is None:
            known = ", ".join(product.builds)
            raise NotFoundError(f"unknown build {ref!r}; versions of {product_name}: {known}")
        return spec

    def sandbox(self, name: str) -> SandboxSpec:
        for spec in self.sandboxes:
            if spec.name == name:
                return spec
        raise NotFoundError(f"unknown sandbox {name!r}; sandboxes: {', '.join(s.name for s in self.sandboxes)}")


def find_lab_file(given: str | None) -> Path:
    """The lab.yml to use: the given path, $LAB_CONFIG, or ./lab.yml."""
    raw = given or os.environ.get("LAB_CONFIG") or DEFAULT_LAB_FILE
    path = Path(raw)
    if path.is_dir():
        path = path / DEFAULT_LAB_FILE
    if not path.exists():
        raise ConfigError("lab file not found; run from a lab directory or pass --lab PATH", source=str(path))
    return path.resolve()


def existing(root: Path, raw: str, what: str, source: Path, data: Any, where: list[Any]) -> Path:
    path = (root / raw).resolve()
    if not path.exists():
        raise ConfigError(f"{what} {raw!r} not found (looked for {path}); create it or fix the path",
                          source=str(source), line=line_of(data, where))
    return path


def load_lab(path: Path, provider: str | None = None, allowed_signers: Path | None = None,
             vault_ids: tuple[str, ...] = (), vault_password_files: tuple[str, ...] = ()) -> LabConfig:
    """Load ``path`` and everything it refers to; raise ConfigError on the first problem found.

    The inventory is resolved by Ansible with the ansible.cfg found from the lab's directory and
    the vault secrets named by ``vault_ids`` / ``vault_password_files`` (and Ansible's own
    settings for them); a missing or wrong secret is a ConfigError before anything runs.

    ``provider``, when given, runs every sandbox on that provider (e.g. the demo on namespace
    sandboxes) whatever the inventory says. ``allowed_signers``, when given, replaces the
    agreement's approver keys (marked as an override, which decisions and bundles record).
    """
    data = load_yaml(path)
    validate(data, schema("lab"), path)
    raw = plain(data)
    root = path.parent
    ansible = ansible_settings(root, vault_ids, vault_password_files)
    inventory = load_inventory(inventory_sources(root, raw["inventory"], path, data), ansible)
    sandboxes = load_sandboxes(inventory, raw.get("sandbox_group", "sandboxes"), raw.get("provider", "local"),
                               provider)
    suites = load_suites(existing(root, raw.get("suites_dir", "test_suites"), "suites directory",
                                  path, data, ["suites_dir"]))
    known_vars = PROVIDER_FACTS | {k for s in sandboxes for k in s.host_vars}
    for suite in suites.values():
        check_variables(suite, known_vars)
    products = load_products(path, data, raw, root, suites)
    baseline = existing(root, raw["baseline"], "playbook", path, data, ["baseline"]) if "baseline" in raw else None
    agreement = load_agreement(existing(root, raw.get("agreement", "agreement.yml"), "agreement",
                                        path, data, ["agreement"]), suites)
    if allowed_signers is not None:
        agreement = override_signers(agreement, allowed_signers)
    return LabConfig(
        path=path,
        name=raw["name"],
        root=root,
        state_dir=(root / raw.get("state_dir", ".lab")).resolve(),
        reports_dir=(root / raw.get("reports_dir", "reports")).resolve(),
        parallel=raw.get("parallel", 2),
        inventory=inventory,
        ansible=ansible,
        sandboxes=sandboxes,
        baseline=baseline,
        products=products,
        suites=suites,
        agreement=agreement,
        timeouts=Timeouts(**raw.get("timeouts", {})),
    )


def inventory_sources(root: Path, raw: str | list[str], source: Path, data: Any) -> tuple[Path, ...]:
    """lab.yml's ``inventory``: one source or a list, each relative to the lab's directory and existing."""
    if isinstance(raw, str):
        return (existing(root, raw, "inventory", source, data, ["inventory"]),)
    return tuple(existing(root, item, "inventory", source, data, ["inventory", index])
                 for index, item in enumerate(raw))


def load_sandboxes(inventory: Inventory, group: str, default_provider: str,
                   override: str | None = None) -> tuple[SandboxSpec, ...]:
    hosts = inventory.hosts_in(group)
    if not hosts:
        raise ConfigError(f"inventory group {group!r} has no hosts; add sandboxes to it or set sandbox_group",
                          source=str(inventory.path))
    specs = []
    for host in hosts:
        variables = inventory.variables(host)
        platform = variables.get("lab_platform")
        if not isinstance(platform, str) or not platform:
            raise ConfigError(f"host {host!r} has no lab_platform variable; set it to the platform it runs",
                              source=str(inventory.path))
        provider = override or str(variables.get("lab_provider", default_provider))
        known = provider_names()
        if provider not in known:
            raise ConfigError(f"host {host!r}: unknown sandbox provider {provider!r}; use one of: "
                              f"{', '.join(known)}", source=str(inventory.path))
        specs.append(SandboxSpec(host, platform, provider, variables))
    return tuple(specs)


def load_products(path: Path, data: Any, raw: dict[str, Any], root: Path,
                  suites: dict[str, Suite]) -> dict[str, Product]:
    products = {}
    for name, body in raw["products"].items():
        where = ["products", name]
        deploy = existing(root, body["deploy"], "playbook", path, data, [*where, "deploy"])
        for index, suite_name in enumerate(body["suites"]):
            if suite_name not in suites:
                raise ConfigError(f"product {name!r} names unknown suite {suite_name!r}; suites: "
                                  f"{', '.join(sorted(suites))}", source=str(path),
                                  line=line_of(data, [*where, "suites", index]))
        builds: dict[str, BuildSpec] = {}
        for index, build in enumerate(body.get("builds", [])):
            line = line_of(data, [*where, "builds", index])
            if build["version"] in builds:
                raise ConfigError(f"build {name}@{build['version']} is declared twice; versions must be unique",
                                  source=str(path), line=line)
            raw_sources = build.get("source", [])
            raw_sources = [raw_sources] if isinstance(raw_sources, str) else raw_sources
            sources = tuple(
                existing(root, s, "build source", path, data, [*where, "builds", index, "source"])
                for s in raw_sources
            )
            builds[build["version"]] = BuildSpec(name, build["version"], (root / build["artifact"]).resolve(),
                                                 sources, build.get("sha256"), line, path)
        products[name] = Product(name, deploy, tuple(body["suites"]), builds,
                                 load_ci_builds(path, data, body, root, where))
    return products


def load_ci_builds(path: Path, data: Any, body: dict[str, Any], root: Path, where: list[Any]) -> CiBuilds | None:
    """The product's ``ci_builds`` (None without one): its version pattern must compile."""
    ci = body.get("ci_builds")
    if ci is None:
        return None
    try:
        re.compile(ci["versions"])
    except re.error as exc:
        raise ConfigError(f"ci_builds.versions {ci['versions']!r} is not a regular expression ({exc}); "
                          r"write one such as '2\.\d+\.\d+\+nightly\.\d+'",
                          source=str(path), line=line_of(data, [*where, "ci_builds", "versions"])) from None
    return CiBuilds(ci["versions"], (root / ci.get("artifacts", "artifacts")).resolve())


def load_suites(directory: Path) -> dict[str, Suite]:
    suites: dict[str, Suite] = {}
    for file in sorted(directory.glob("*.y*ml")):
        suite = load_suite(file)
        if suite.name in suites:
            raise ConfigError(f"suite {suite.name!r} is also defined in {suites[suite.name].path}; "
                              "rename one", source=str(file))
        suites[suite.name] = suite
    return suites


def load_suite(file: Path) -> Suite:
    """Load one suite file; each check's parameters are validated against its type's schema."""
    data = load_yaml(file)
    validate(data, schema("suite"), file)
    raw = plain(data)
    registries = type_registries(raw["platforms"])
    checks: list[Check] = []
    seen: dict[str, int | None] = {}
    for index, entry in enumerate(raw["checks"]):
        where = ["checks", index]
        line = line_of(data, where)
        check_id = entry["id"]
        if check_id in seen:
            raise ConfigError(f"duplicate check id {check_id!r} (first at line {seen[check_id]}); "
                              "check ids must be unique in a suite", source=str(file), line=line)
        seen[check_id] = line
        kind = entry["type"]
        for family, registry in registries:
            if kind not in registry:
                raise ConfigError(f"check {check_id!r}: unknown check type {kind!r} for {family} platforms; "
                                  f"known types: {', '.join(sorted(registry))}", source=str(file),
                                  line=line_of(data, [*where, "type"]))
            validate(data["checks"][index], with_common_fields(registry[kind]), file, base=[f"check {check_id}"])
        params = {k: v for k, v in entry.items() if k not in COMMON_FIELDS}
        if any(family == "Windows" for family, _ in registries) and (clashes := case_clashes(kind, params)):
            raise ConfigError(f"check {check_id!r}: keys that differ only in case ({'; '.join(clashes)}); Windows "
                              "PowerShell 5.1 cannot read a manifest with them (every check would error): keep one "
                              "of each", source=str(file), line=line)
        checks.append(Check(
            id=check_id,
            type=kind,
            params=params,
            timeout=float(entry.get("timeout", raw.get("timeout", 30))),
            retries=int(entry.get("retries", raw.get("retries", 0))),
            description=entry.get("description", ""),
            line=line,
            skip=entry.get("skip"),
        ))
    for index, check in enumerate(checks):
        if check.params and any(isinstance(v, str) and "\0" in v for v in check.params.values()):
            raise ConfigError(f"check {check.id!r} has a NUL byte in a parameter", source=str(file),
                              line=line_of(data, ["checks", index]))
    return Suite(raw["suite"], file, raw.get("mandatory", True), tuple(raw["platforms"]), tuple(checks),
                 raw.get("description", ""))


def type_registries(platforms: list[str]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """The check-type registries a suite must satisfy: Windows platforms run runner.ps1, the rest runner.py.

    A suite aimed at both kinds must be valid for both runners.
    """
    windows = [p for p in platforms if p.startswith("windows")]
    registries: list[tuple[str, dict[str, dict[str, Any]]]] = []
    if windows:
        registries.append(("Windows", WINDOWS_CHECK_TYPES))
    if len(windows) < len(platforms):
        registries.append(("Linux", CHECK_TYPES))
    return registries


def with_common_fields(type_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a whole check entry: the type's parameters plus the fields every check has."""
    common: dict[str, Any] = {name: {} for name in COMMON_FIELDS}
    return {**type_schema, "properties": {**common, **type_schema["properties"]}}


def check_variables(suite: Suite, known: frozenset[str] | set[str]) -> None:
    for check in suite.checks:
        for name in VARIABLE.findall(repr(check.params)):
            if name not in known:
                raise ConfigError(f"check {check.id!r} uses unknown variable ${{{name}}}; known: "
                                  f"{', '.join(sorted(known))}", source=str(suite.path), line=check.line)

