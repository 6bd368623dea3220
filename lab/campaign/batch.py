"""One Ansible run per campaign step: a playbook over every sandbox that is ready for it.

This is the seam between a campaign and whatever runs its steps: ``run_step`` takes the hosts
of one step (each with its own facts), runs the playbook once over all of them with ``forks``,
and hands each host's outcome to ``on_host`` as soon as that host is settled, from its own
events, while Ansible still works on the others. A failure on one host never fails another;
every host given gets exactly one ``HostStep``, also when Ansible could not run at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.ansible.playbook import HostOutcome, host_detail, run_playbook_on
from lab.ansible.settings import AnsibleSettings
from lab.errors import InfrastructureError
from lab.sandboxes.base import HostHandle


@dataclass(frozen=True)
class HostStep:
    """How one host fared in a step: ``ok``, whether a failure is infrastructure's (not the build's),
    one line of detail, and the ``set_stats`` data its own tasks reported."""

    host: str
    ok: bool
    infrastructure_error: bool
    detail: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepRun:
    """Where and how a step's playbook runs: the lab's inventory sources, a private work directory,
    its timeout, Ansible's forks (how many hosts it works on at once), and the lab's ansible.cfg
    and vault secrets."""

    inventory: tuple[Path, ...]
    work_dir: Path
    timeout: float
    forks: int
    ansible: AnsibleSettings


def run_step(playbook: Path, hosts: Mapping[str, HostHandle], extravars: Mapping[str, Any], run: StepRun,
             on_host: Callable[[HostStep], None]) -> dict[str, HostStep]:
    """Run ``playbook`` once over ``hosts`` (each with its handle's facts as its own variables) and
    return every host's step; ``on_host`` gets each one, in this thread, as soon as it is settled."""
    steps: dict[str, HostStep] = {}

    def settled(step: HostStep) -> None:
        if step.host in hosts and step.host not in steps:
            steps[step.host] = step
            on_host(step)

    if not hosts:
        return steps
    try:
        outcome = run_playbook_on(
            playbook, inventory=run.inventory, ansible=run.ansible, hosts=sorted(hosts), extravars=dict(extravars),
            host_vars={name: handle.facts for name, handle in hosts.items()}, work_dir=run.work_dir,
            timeout=run.timeout, forks=max(1, min(run.forks, len(hosts))),
            on_host=lambda host: settled(step_of(playbook, host)))
    except InfrastructureError as exc:
        for name in sorted(hosts):
            settled(HostStep(name, False, True, str(exc)))
        return steps
    for name in sorted(hosts):  # hosts the events never settled: a timeout, a crash, never reached
        settled(HostStep(name, outcome.host_ok(name), outcome.infrastructure_error(name), outcome.detail(name),
                         dict(outcome.hosts[name].stats) if name in outcome.hosts else {}))
    return steps


def step_of(playbook: Path, outcome: HostOutcome) -> HostStep:
    """A settled host's step: ok when its play ran to the end without a failure of its own."""
    ok = outcome.ok and outcome.finished
    return HostStep(outcome.host, ok, outcome.unreachable, host_detail(playbook.name, outcome), dict(outcome.stats))
