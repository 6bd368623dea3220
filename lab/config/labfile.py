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
from lab.config.executor import DEFAULT_EXECUTOR, ExecutorSettings, executor_settings
from lab.config.hostvars import check_host_variables
from lab.config.inventory import Inventory, load_inventory
from lab.config.paths import Confinement, Kind
from lab.config.schemas import schema, validate
from lab.config.store_location import StoreLocation, store_location
from lab.errors import ConfigError, NotFoundError
from lab.model import Agreement, BuildSpec, Check, CiBuilds, Product, SandboxSpec, Suite
from lab.sandboxes.registry import provider_names
from lab.util.suggest import nearest_hint
from lab.util.yamlfile import DEFAULT_LIMITS, Limits, line_of, load_yaml, plain, read_capped

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
class AuditSettings:
    """lab.yml's ``audit:``: the lab's key that signs checkpoints of the audit log (None: the lab has
    none), the principal allowed_signers lists for it (None: found from allowed_signers), and
    whether a promotion or rollout end that cannot be sealed is refused."""

    checkpoint_key: Path | None = None
    principal: str | None = None
    require_checkpoints: bool = False


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
    confinement: Confinement
    limits: Limits
    store: StoreLocation  # SQLite in state_dir, or PostgreSQL (lab.yml's store:, $LAB_STORE)
    executor: ExecutorSettings = DEFAULT_EXECUTOR
    audit: AuditSettings = AuditSettings()

    def build_spec(self, ref: str) -> BuildSpec:
        """The build named ``product@version``; NotFoundError listing what exists otherwise."""
        product_name, _, version = ref.partition("@")
        product = self.products.get(product_name)
        if product is None or not version:
            known = ", ".join(f"{b.ref}" for p in self.products.values() for b in p.builds.values())
            hint = nearest_hint(ref, [b.ref for p in self.products.values() for b in p.builds.values()])
            raise NotFoundError(f"unknown build {ref!r}; builds in {self.path.name}: {known}{hint}")
        spec = product.builds.get(version)
        if spec is None:
            known = ", ".join(product.builds)
            raise NotFoundError(f"unknown build {ref!r}; versions of {product_name}: {known}"
                                f"{nearest_hint(version, product.builds)}")
        return spec

    def sandbox(self, name: str) -> SandboxSpec:
        for spec in self.sandboxes:
            if spec.name == name:
                return spec
        names = [s.name for s in self.sandboxes]
        raise NotFoundError(f"unknown sandbox {name!r}; sandboxes: {', '.join(names)}{nearest_hint(name, names)}")


def find_lab_file(given: str | None) -> Path:
    """The lab.yml to use: the given path, $LAB_CONFIG, or ./lab.yml; it must be a regular file."""
    raw = given or os.environ.get("LAB_CONFIG") or DEFAULT_LAB_FILE
    if "\0" in raw:
        raise ConfigError(f"--lab {raw!r} contains a NUL byte; give the path of a lab.yml")
    path = Path(raw)
    if path.is_dir():
        path = path / DEFAULT_LAB_FILE
    if not path.exists():
        raise ConfigError("lab file not found; run from a lab directory or pass --lab PATH", source=str(path))
    if not path.is_file():
        raise ConfigError("the lab file is not a regular file (a device, pipe or socket); pass --lab with the "
                          "path of a lab.yml", source=str(path))
    return path.resolve()


def existing(confinement: Confinement, raw: str, what: str, source: Path, data: Any, where: list[Any],
             kind: Kind = "file") -> Path:
    """``raw`` resolved inside the lab (``Confinement``), existing and of ``kind``; ConfigError naming file:line."""
    return confinement.resolve(raw, what, source=source, line=line_of(data, where), must_exist=kind)


def confinement_of(path: Path, data: Any, raw: dict[str, Any]) -> Confinement:
    """The lab's directory and the ``allowed_roots`` lab.yml lists (existing directories, never ``/``)."""
    root = path.parent.resolve()
    extra = []
    for index, entry in enumerate(raw.get("allowed_roots", [])):
        line = line_of(data, ["allowed_roots", index])
        where = (root / entry).resolve()
        if not where.is_dir():
            raise ConfigError(f"allowed_roots entry {entry!r} is not a directory ({where}); name an existing "
                              "directory, such as the build share", source=str(path), line=line)
        if where == Path(where.anchor):
            raise ConfigError(f"allowed_roots entry {entry!r} is the file system's root, which would allow every "
                              "path; name the directory the lab really needs", source=str(path), line=line)
        extra.append(where)
    return Confinement(root, tuple(extra))


def limits_of(raw: dict[str, Any]) -> Limits:
    """The input limits lab.yml's ``limits:`` section sets (the defaults for what it leaves out)."""
    return Limits(**{**DEFAULT_LIMITS.__dict__, **raw.get("limits", {})})


def load_lab(path: Path, provider: str | None = None, allowed_signers: Path | None = None,
             vault_ids: tuple[str, ...] = (), vault_password_files: tuple[str, ...] = (),
             executor: str | None = None) -> LabConfig:
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
    confinement = confinement_of(path, data, raw)
    limits = limits_of(raw)
    state_dir = confinement.resolve(raw.get("state_dir", ".lab"), "state_dir", source=path,
                                    line=line_of(data, ["state_dir"]), must_exist=None)
    reports_dir = confinement.resolve(raw.get("reports_dir", "reports"), "reports_dir", source=path,
                                      line=line_of(data, ["reports_dir"]), must_exist=None)
    ansible = ansible_settings(root, vault_ids, vault_password_files)
    sources = inventory_sources(confinement, raw["inventory"], path, data)
    check_inventory_files(sources, limits)
    inventory = load_inventory(sources, ansible)
    sandboxes = load_sandboxes(inventory, raw.get("sandbox_group", "sandboxes"), raw.get("provider", "local"),
                               provider, confinement)
    platforms = known_platforms(inventory)
    suites = load_suites(existing(confinement, raw.get("suites_dir", "test_suites"), "suites directory",
                                  path, data, ["suites_dir"], "directory"), limits, confinement, platforms)
    known_vars = PROVIDER_FACTS | {k for s in sandboxes for k in s.host_vars}
    for suite in suites.values():
        check_variables(suite, known_vars)
    products = load_products(path, data, raw, confinement, suites, limits)
    baseline = None
    if "baseline" in raw:
        baseline = existing(confinement, raw["baseline"], "playbook", path, data, ["baseline"])
        check_playbook(baseline, limits)
    agreement = load_agreement(existing(confinement, raw.get("agreement", "agreement.yml"), "agreement",
                                        path, data, ["agreement"]), suites, limits, confinement,
                               platforms=platforms)
    if allowed_signers is not None:
        agreement = override_signers(agreement, allowed_signers)
    return LabConfig(
        path=path,
        name=raw["name"],
        root=root,
        state_dir=state_dir,
        reports_dir=reports_dir,
        parallel=raw.get("parallel", 2),
        inventory=inventory,
        ansible=ansible,
        sandboxes=sandboxes,
        baseline=baseline,
        products=products,
        suites=suites,
        agreement=agreement,
        timeouts=Timeouts(**{k: float(v) for k, v in raw.get("timeouts", {}).items()}),
        confinement=confinement,
        limits=limits,
        store=store_location(raw.get("store"), os.environ.get("LAB_STORE"), state_dir, path,
                             line_of(data, ["store"])),
        executor=executor_settings(raw.get("executor"), executor, root, path, data),
        audit=audit_settings(confinement, path, data, raw),
    )


def audit_settings(confinement: Confinement, path: Path, data: Any, raw: dict[str, Any]) -> AuditSettings:
    """lab.yml's ``audit:`` section; the key's path must stay in the lab (it is only checked to be a
    file when a checkpoint is signed, so a machine that only reads the store needs no key)."""
    section = raw.get("audit", {})
    key = None
    if "checkpoint_key" in section:
        key = confinement.resolve(section["checkpoint_key"], "audit.checkpoint_key", source=path,
                                  line=line_of(data, ["audit", "checkpoint_key"]), must_exist=None)
    return AuditSettings(key, section.get("principal"), bool(section.get("require_checkpoints", False)))


def inventory_sources(confinement: Confinement, raw: str | list[str], source: Path,
                      data: Any) -> tuple[Path, ...]:
    """lab.yml's ``inventory``: one source or a list, each relative to the lab's directory, inside it and existing."""
    if isinstance(raw, str):
        return (existing(confinement, raw, "inventory", source, data, ["inventory"], "any"),)
    return tuple(existing(confinement, item, "inventory", source, data, ["inventory", index], "any")
                 for index, item in enumerate(raw))


def check_inventory_files(sources: tuple[Path, ...], limits: Limits) -> None:
    """Every file Ansible will read for the inventory (the sources, the files of a source directory,
    and ``group_vars``/``host_vars`` beside them) within ``limits`` before Ansible reads it: a regular
    file under the size cap, and YAML without alias bombs, foreign tags or a second document."""
    files: list[Path] = []
    for source in sources:
        base = source if source.is_dir() else source.parent
        files += [source] if not source.is_dir() else sorted(p for p in source.iterdir() if not p.is_dir())
        for kind in ("group_vars", "host_vars"):
            if (base / kind).is_dir():
                files += sorted(p for p in (base / kind).rglob("*") if not p.is_dir())
    for file in files:
        if file.suffix in (".yml", ".yaml", ".json") or file.parent.name in ("group_vars", "host_vars"):
            load_yaml(file, limits)
        else:
            read_capped(file, limits.max_bytes, "inventory file")


def known_platforms(inventory: Inventory) -> set[str]:
    """Every ``lab_platform`` a host of the inventory declares (sandboxes and production alike)."""
    found = set()
    for host in inventory.hosts_in("all"):
        platform = inventory.variables(host).get("lab_platform")
        if isinstance(platform, str) and platform:
            found.add(platform)
    return found


def check_playbook(path: Path, limits: Limits) -> None:
    """``path`` must be an Ansible playbook: a YAML list of plays (mappings) or imports."""
    data = load_yaml(path, limits)
    if not isinstance(data, list) or not data:
        raise ConfigError("not an Ansible playbook: a playbook is a YAML list of plays (- hosts: ...); fix the file "
                          "or name the right one", source=str(path), line=1)
    for index, play in enumerate(data):
        if not isinstance(play, dict):
            raise ConfigError(f"play {index + 1} is not a mapping; each play starts with '- hosts: ...' or "
                              "'- import_playbook: ...'", source=str(path), line=line_of(data, [index]))


def load_sandboxes(inventory: Inventory, group: str, default_provider: str,
                   override: str | None = None, confinement: Confinement | None = None) -> tuple[SandboxSpec, ...]:
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
                              f"{', '.join(known)}{nearest_hint(provider, known)}", source=str(inventory.path))
        check_host_variables(host, variables, inventory.path, confinement)
        specs.append(SandboxSpec(host, platform, provider, variables))
    return tuple(specs)


def load_products(path: Path, data: Any, raw: dict[str, Any], confinement: Confinement,
                  suites: dict[str, Suite], limits: Limits = DEFAULT_LIMITS) -> dict[str, Product]:
    products = {}
    for name, body in raw["products"].items():
        where = ["products", name]
        deploy = existing(confinement, body["deploy"], "playbook", path, data, [*where, "deploy"])
        check_playbook(deploy, limits)
        for index, suite_name in enumerate(body["suites"]):
            if suite_name not in suites:
                raise ConfigError(f"product {name!r} names unknown suite {suite_name!r}"
                                  f"{nearest_hint(suite_name, suites)}; suites: "
                                  f"{', '.join(sorted(suites))}", source=str(path),
                                  line=line_of(data, [*where, "suites", index]))
        builds: dict[str, BuildSpec] = {}
        for index, build in enumerate(body.get("builds", [])):
            at = [*where, "builds", index]
            line = line_of(data, at)
            if build["version"] in builds:
                raise ConfigError(f"build {name}@{build['version']} is declared twice; versions must be unique",
                                  source=str(path), line=line)
            raw_sources = build.get("source", [])
            raw_sources = [raw_sources] if isinstance(raw_sources, str) else raw_sources
            sources = tuple(
                existing(confinement, s, "build source", path, data,
                         [*at, "source", i] if isinstance(build.get("source"), list) else [*at, "source"], "any")
                for i, s in enumerate(raw_sources)
            )
            artifact = confinement.resolve(build["artifact"], "build artifact", source=path,
                                           line=line_of(data, [*at, "artifact"]), must_exist=None)
            if artifact.is_dir() or (not sources and not artifact.exists()):
                state = "a directory" if artifact.is_dir() else "missing, and the build has no source to pack it from"
                raise ConfigError(f"build artifact {build['artifact']!r} is {state} ({artifact}); name the artifact "
                                  "file, or give a source", source=str(path), line=line_of(data, [*at, "artifact"]))
            if artifact in sources or any(artifact.is_relative_to(s) for s in sources if s.is_dir()):
                raise ConfigError(f"build artifact {build['artifact']!r} lies inside its own source; write it "
                                  "elsewhere (e.g. artifacts/)", source=str(path),
                                  line=line_of(data, [*at, "artifact"]))
            builds[build["version"]] = BuildSpec(name, build["version"], artifact,
                                                 sources, build.get("sha256"), line, path)
        products[name] = Product(name, deploy, tuple(body["suites"]), builds,
                                 load_ci_builds(path, data, body, confinement, where))
    return products


def load_ci_builds(path: Path, data: Any, body: dict[str, Any], confinement: Confinement,
                   where: list[Any]) -> CiBuilds | None:
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
    artifacts = confinement.resolve(ci.get("artifacts", "artifacts"), "ci_builds.artifacts", source=path,
                                    line=line_of(data, [*where, "ci_builds", "artifacts"]), must_exist=None)
    return CiBuilds(ci["versions"], artifacts)


def load_suites(directory: Path, limits: Limits = DEFAULT_LIMITS, confinement: Confinement | None = None,
                platforms: set[str] | None = None) -> dict[str, Suite]:
    """Every suite file (``*.yml``, ``*.yaml``) of ``directory``, by suite name. With ``confinement``,
    a suite file that is a symlink out of the lab is refused; with ``platforms``, so is a suite aimed at
    a platform no host has."""
    suites: dict[str, Suite] = {}
    for file in sorted(directory.glob("*.y*ml")):
        if confinement is not None:
            confinement.resolve(file.name, "suite file", source=file, line=None, base=directory, must_exist="file")
        suite = load_suite(file, limits, platforms)
        for check in suite.checks if confinement is not None else ():
            for name in check.params.get("files", []) if check.type == "testinfra" else []:
                assert confinement is not None
                confinement.resolve(str(name), f"check {check.id!r}: testinfra file", source=file, line=check.line,
                                    base=file.parent, must_exist="file")
        if suite.name in suites:
            raise ConfigError(f"suite {suite.name!r} is also defined in {suites[suite.name].path}; "
                              "rename one", source=str(file))
        suites[suite.name] = suite
    return suites


def load_suite(file: Path, limits: Limits = DEFAULT_LIMITS, platforms: set[str] | None = None) -> Suite:
    """Load one suite file; each check's parameters are validated against its type's schema.

    ``platforms``, when given, are the platforms the lab's hosts run: a suite aimed at another is refused."""
    data = load_yaml(file, limits)
    validate(data, schema("suite"), file)
    raw = plain(data)
    if platforms is not None:
        for index, platform in enumerate(raw["platforms"]):
            if platform != "any" and platform not in platforms:
                raise ConfigError(f"suite {raw['suite']!r} targets platform {platform!r}, which no host of the "
                                  f"inventory has (lab_platform){nearest_hint(platform, platforms)}; platforms: "
                                  f"{', '.join(sorted(platforms)) or 'none'}", source=str(file),
                                  line=line_of(data, ["platforms", index]))
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
                                  f"known types: {', '.join(sorted(registry))}{nearest_hint(kind, registry)}",
                                  source=str(file),
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
                                  f"{', '.join(sorted(known))}{nearest_hint(name, known)}", source=str(suite.path),
                                  line=check.line)

