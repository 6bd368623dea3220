"""Golden baselines: install the baseline with one playbook run over the sandboxes that lack it,
keep one sandbox of each golden key as that key's image, and (``rebaseline``) force both.

A sandbox whose provider holds the golden image of the baseline as it is now is reset to it
(``Provider.reset_from``) and needs no baseline run; the key (``goldens_of``) changes whenever the
baseline pack, the baseline playbook, the platform or the host's own variables change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.campaign.baseline import PACK_VARIABLE, baseline_vars, goldens_of
from lab.campaign.batch import HostStep, StepRun, run_step
from lab.config.labfile import LabConfig
from lab.errors import ConfigError, LabError
from lab.evidence.leases import lease
from lab.model import SandboxSpec
from lab.sandboxes.base import Golden, HostHandle, LabSite, Provider
from lab.sandboxes.registry import provider_for
from lab.util.clock import now

Baselined = Callable[[HostStep, Golden], None]


def provider_of(config: LabConfig, spec: SandboxSpec) -> Provider:
    """``spec``'s provider, set up as a campaign sets it up."""
    site = LabSite(config.root, config.inventory.sources, config.timeouts.playbook, config.ansible)
    return provider_for(spec.provider, config.state_dir, site)


def goldens_for(config: LabConfig, variables: Mapping[str, Any], specs: Iterable[SandboxSpec]) -> dict[str, Golden]:
    """The golden baseline each of ``specs`` starts from, by name, with the baseline packed as
    ``variables`` (``baseline_vars``) say; worked out once per run (the baseline playbook is read once)."""
    if config.baseline is None:
        raise ConfigError("this lab has no baseline playbook (lab.yml `baseline:`), so it has no golden baselines")
    pack = variables.get(PACK_VARIABLE)
    return goldens_of(config.baseline, Path(str(pack)) if pack else None, specs)


def install_baseline(config: LabConfig, hosts: Mapping[str, tuple[SandboxSpec, HostHandle]],
                     variables: Mapping[str, Any], goldens: Mapping[str, Golden], run: StepRun,
                     on_host: Baselined) -> None:
    """One baseline run over ``hosts``; the first host of each golden key (``goldens``, by name) that
    comes through is kept as that key's golden image. ``on_host`` gets each host's step (its detail saying whether it
    was kept) and golden baseline as soon as the host is settled."""
    assert config.baseline is not None
    captured: set[str] = set()

    def baselined(step: HostStep) -> None:
        spec = hosts[step.host][0]
        golden = goldens[step.host]
        if step.ok and golden.key not in captured:
            captured.add(golden.key)
            step = HostStep(step.host, step.ok, step.infrastructure_error,
                            step.detail + kept_as(config, spec, golden), step.stats)
        on_host(step, golden)

    run_step(config.baseline, {name: handle for name, (_, handle) in hosts.items()}, variables, run, baselined)


def kept_as(config: LabConfig, spec: SandboxSpec, golden: Golden) -> str:
    """Keep ``spec``'s freshly baselined sandbox as ``golden``'s image; the words a step records."""
    try:
        kept = provider_of(config, spec).capture(spec, golden)
    except (LabError, OSError) as exc:
        return f"; golden image {golden.label} not kept: {exc}"
    return f"; kept as golden image {golden.label}" if kept else ""


@dataclass(frozen=True)
class Rebaselined:
    """One sandbox after ``rebaseline``: whether the baseline was installed and kept, and the golden key."""

    sandbox: str
    provider: str
    ok: bool
    detail: str
    golden: str | None
    exit_code: int = 0


def rebaseline(config: LabConfig, specs: list[SandboxSpec], lease_wait: float, holder: str) -> list[Rebaselined]:
    """Install the baseline as it is now on ``specs`` (each reset afresh, its old golden image dropped)
    in one run, and keep the result as the golden image of each key; later resets return to it."""
    if config.baseline is None:
        raise ConfigError("this lab has no baseline playbook (lab.yml `baseline:`): there is nothing to rebaseline")
    variables = baseline_vars(config.baseline, config.state_dir)
    goldens = goldens_for(config, variables, specs)
    done: dict[str, Rebaselined] = {}
    ready: dict[str, tuple[SandboxSpec, HostHandle]] = {}
    with ExitStack() as leases:
        for spec in specs:
            try:
                leases.enter_context(lease(config, spec.name, holder, lease_wait))
                provider = provider_of(config, spec)
                provider.forget_golden(spec, goldens[spec.name])
                ready[spec.name] = (spec, provider.reset(spec))
            except LabError as exc:
                done[spec.name] = Rebaselined(spec.name, spec.provider, False, str(exc), None, exc.exit_code)
            except OSError as exc:
                done[spec.name] = Rebaselined(spec.name, spec.provider, False, f"reset failed: {exc}", None, 3)

        def baselined(step: HostStep, golden: Golden) -> None:
            spec = ready[step.host][0]
            done[step.host] = Rebaselined(step.host, spec.provider, step.ok, step.detail,
                                          golden.key if step.ok else None, 0 if step.ok else 3)

        run = StepRun(config.inventory.sources, config.state_dir / "runs" / f"rebaseline-{now().replace(':', '')}",
                      config.timeouts.playbook, config.parallel, config.ansible)
        install_baseline(config, ready, variables, goldens, run, baselined)
    return [done[spec.name] for spec in specs]
