"""``lab worker``: serve one zone's queue on this machine."""

from __future__ import annotations

from pathlib import Path

from lab.api.session import Lab
from lab.campaign.remote import CELLS, run_cells
from lab.errors import ConfigError
from lab.executors.base import ROLLBACK, Outcome, Task
from lab.executors.share import fetch
from lab.executors.worker import serve
from lab.rollout.shards import SHARD, run_rollback, run_shard


def worker(lab: Lab, zone: str) -> None:
    """Run a worker for ``zone``'s tasks (campaign cells, rollout shards and rollbacks) until it is stopped, with
    this machine's lab (its inventory, secrets, vault and sandbox leases): builds come from the
    artifact share by sha256, checked; outcomes go back to the controller, which records them in
    its store. ConfigError when lab.yml has no celery executor section."""
    config = lab.config
    settings = config.executor
    if not settings.remote or settings.share is None:
        raise ConfigError("`lab worker` serves the celery executor: set executor.kind: celery with its broker, "
                          "share and key_file in lab.yml", source=str(config.path))
    share = settings.share
    cache = config.state_dir / "worker" / "artifacts"

    def artifact(task: Task) -> Path:
        build = task.payload["build"]
        return fetch(share, build["digest"], cache, build["artifact"])

    def shard(task: Task) -> Outcome:
        return run_shard(config, task.payload, artifact(task))

    def cells(task: Task) -> Outcome:
        return run_cells(config, task.payload, artifact(task))

    def rollback(task: Task) -> Outcome:
        builds = {str(found["lab_previous_digest"]): str(found["artifact"])
                  for found in task.payload["previous"].values() if "artifact" in found}
        fetched = {digest: fetch(share, digest, cache, name) for digest, name in builds.items()}  # each build once
        previous = {host: fetched[str(found["lab_previous_digest"])]
                    for host, found in task.payload["previous"].items() if "artifact" in found}
        return run_rollback(config, task.payload, artifact(task), previous)

    serve(settings, zone, {SHARD: shard, CELLS: cells, ROLLBACK: rollback})
