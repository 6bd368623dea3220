"""A rollout shard as a task: deploy to up to ``forks`` hosts of one zone (one playbook run), then
the health suite on each host deployed; what a zone worker does with a ``rollout-shard`` task and
how the controller records its outcome.

The task's payload names the rollout, wave, shard and attempt, the hosts to deploy and the
hosts only to check (deployed before a crash, not judged yet), the build (product, version,
digest, artifact file name), the deploy playbook's sha256 (a worker refuses to run its own copy
if it differs), the health suite as a manifest, and the install note. No credential and no
artifact: the worker reads its zone's secrets from its own inventory and fetches the build from
the share by digest. The outcome is JSON: each host's deploy (ok, detail) and health results, or
``infrastructure`` when the playbook reached none of the hosts.

A ``rollout-rollback`` task is the same for the way back: the rollback playbook over its hosts
(each host's earlier build as variables, fetched from the share by digest when the controller
knew its artifact), then the health suite on the hosts it restored that ran an earlier build.
Its outcome: each host's rollback (ok, detail) and health results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.ansible.playbook import PlaybookOutcome, run_playbook_on
from lab.config.labfile import LabConfig
from lab.config.rollout_plan import load_rollout_settings
from lab.errors import ConfigError
from lab.executors.base import Outcome
from lab.executors.codec import result_from_json, result_to_json, suite_from_json
from lab.executors.share import sha256_of
from lab.rollout.endpoints import endpoint
from lab.rollout.health import HostHealth, check_hosts

SHARD = "rollout-shard"


def unreached(outcome: PlaybookOutcome, hosts: list[str]) -> str | None:
    """Why a playbook run says nothing about ``hosts`` (it reached none of them, or every one was
    unreachable), or None when it reached at least one."""
    if not any(h in outcome.hosts for h in hosts) or all(outcome.infrastructure_error(h) for h in hosts):
        return outcome.detail(hosts[0])
    return None


def ignore(health: HostHealth) -> None:
    """Nothing to do as one host's check ends: the outcome carries them all."""


def run_shard(config: LabConfig, payload: dict[str, Any], artifact: Path) -> Outcome:
    """Do a ``rollout-shard`` task on this machine, with this machine's inventory and secrets:
    the deploy playbook over ``payload["deploy"]`` (``artifact`` is the build fetched and checked),
    then the health suite on each host deployed and on ``payload["check"]``."""
    deploy = [str(h) for h in payload["deploy"]]
    deployed: dict[str, dict[str, Any]] = {}
    to_check = [str(h) for h in payload["check"]]
    if deploy:
        playbook = config.products[payload["build"]["product"]].deploy_playbook
        deployed, why = run_on_hosts(config, payload, playbook, deploy, artifact, payload["previous"], "")
        if why is not None:
            return {"infrastructure": why}
        to_check += [h for h in deploy if deployed[h]["ok"]]
    return {"deployed": deployed, **health_outcome(config, payload, to_check)}


def run_rollback(config: LabConfig, payload: dict[str, Any], artifact: Path,
                 previous_artifacts: dict[str, Path]) -> Outcome:
    """Do a ``rollout-rollback`` task on this machine: the rollback playbook over ``payload["hosts"]``
    (``previous_artifacts``: each host's earlier build, fetched and checked, where the controller
    knew it), then the health suite on the hosts of ``payload["check"]`` it restored."""
    hosts = [str(h) for h in payload["hosts"]]
    previous = {h: {k: v for k, v in payload["previous"].get(h, {}).items() if k != "artifact"} for h in hosts}
    for host, path in previous_artifacts.items():
        previous[host]["lab_previous_artifact"] = str(path)
    restored, why = run_on_hosts(config, payload, load_rollout_settings(config).rollback_playbook, hosts, artifact,
                                 previous, "-rollback")
    if why is not None:
        return {"infrastructure": why}
    check = [str(h) for h in payload["check"] if restored[str(h)]["ok"]]
    return {"rolled_back": restored, **health_outcome(config, payload, check)}


def run_on_hosts(config: LabConfig, payload: dict[str, Any], playbook: Path, hosts: list[str], artifact: Path,
                 host_vars: dict[str, dict[str, Any]], run_suffix: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``playbook`` (this worker's copy, refused unless its sha256 is the controller's) over ``hosts``
    with the task's build as variables: each host's ``{ok, detail}``, and why it says nothing about
    them (it reached none) or None."""
    if sha256_of(playbook) != payload["playbook_sha256"]:
        raise ConfigError(f"this worker's {playbook} differs from the controller's (sha256 "
                          f"{payload['playbook_sha256'][:12]}…); deploy the same lab to every zone")
    build = payload["build"]
    items = {h: endpoint(config, h) for h in hosts}
    extravars = {"lab_artifact": str(artifact), "lab_digest": build["digest"], "lab_product": build["product"],
                 "lab_version": build["version"], "lab_rollout": payload["note"]}
    outcome = run_playbook_on(
        playbook, inventory=config.inventory.sources, ansible=config.ansible, hosts=hosts, extravars=extravars,
        host_vars={h: {**item.facts, **host_vars.get(h, {})} for h, item in items.items()},
        work_dir=config.state_dir / "worker" / "runs" / payload["rollout"] / f"wave-{payload['wave']}{run_suffix}",
        timeout=float(payload["timeout"]), forks=int(payload["forks"]))
    return {h: {"ok": outcome.host_ok(h), "detail": outcome.detail(h)} for h in hosts}, unreached(outcome, hosts)


def health_outcome(config: LabConfig, payload: dict[str, Any], hosts: list[str]) -> Outcome:
    """The payload's health suite on ``hosts``, as an outcome's ``health`` and ``suite``."""
    name = str(payload["suite"]["name"])
    suite = suite_from_json(payload["suite"], config.suites[name].path.parent if name in config.suites else config.root)
    found = check_hosts([endpoint(config, h) for h in hosts], suite, float(payload["suite_cap"]),
                        int(payload["forks"]), ignore)
    return {"health": {h.host: [result_to_json(r) for r in h.results] for h in found}, "suite": suite.name}


def health_of(outcome: Outcome) -> list[HostHealth]:
    """The health results an outcome carries, per host."""
    return [HostHealth(host, str(outcome["suite"]), tuple(result_from_json(r) for r in results))
            for host, results in outcome["health"].items()]
