"""The Celery executor: tasks published to zone queues on a Redis broker, run by ``lab worker``.

Redis is a plain dispatcher here: the controller commits a dispatch row per task before it is
published (``lab.executors.dispatches``) and records every outcome in its own store; workers
never touch the store. Every message is an HMAC-signed envelope (``lab.executors.signing``),
and so is every outcome a worker answers: the controller records none that does not open;
JSON only (no pickle). Workers take one task at a time (prefetch 1), acknowledge it only when it
is done (``acks_late``; a worker killed mid-task leaves it to another: ``reject_on_worker_lost``
and Redis's visibility timeout), and a task's time limit stays below that timeout so a task
still running is never handed to a second worker.

Redis keys besides Celery's own: ``lab:halt:<subject>`` (a halted rollout: workers run none of
its tasks), ``lab:claim:<task>`` (a worker is on it) and ``lab:done:<task>`` (its outcome, so a
task delivered twice runs once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.config.executor import ExecutorSettings
from lab.errors import InfrastructureError
from lab.evidence.store import Store
from lab.executors.base import UNSTOPPABLE, Outcome, Task
from lab.executors.dispatches import Dispatches
from lab.executors.share import publish
from lab.executors.signing import Refused, open_outcome, read_key, seal

TASK_NAME = "lab.run"
POLL_S = 0.2
KEPT_S = 7 * 24 * 3600  # how long halt flags and outcomes stay in Redis


def halt_key(subject: str) -> str:
    return f"lab:halt:{subject}"


def claim_key(task_id: str) -> str:
    return f"lab:claim:{task_id}"


def done_key(task_id: str) -> str:
    return f"lab:done:{task_id}"


def celery_app(settings: ExecutorSettings) -> Any:
    """The Celery application both ends use: JSON only, one task at a time, late acknowledgement.
    (Celery is imported here, not with lab: only a lab that uses this executor needs it.)"""
    from celery import Celery

    app = Celery("lab", broker=settings.broker, backend=settings.broker, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        worker_prefetch_multiplier=1, task_acks_late=True, task_reject_on_worker_lost=True,
        task_time_limit=settings.time_limit, task_track_started=True, result_expires=KEPT_S,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "unacked_restore_interval": 1, "unacked_restore_throttle": 1},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False, worker_send_task_events=False,
        task_default_queue="lab")
    return app


def redis_client(settings: ExecutorSettings) -> Any:
    """A client of the broker's Redis, for lab's own keys (halt flags, claims, outcomes)."""
    from redis import Redis

    return Redis.from_url(settings.broker)


class CeleryExecutor:
    """Publishes tasks to their zone's queue and records their outcomes as they arrive."""

    kind = "celery"
    remote = True

    def __init__(self, settings: ExecutorSettings, store: Store, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.store = store
        self.key = read_key(settings.key_file) if settings.key_file else b""
        self.app = celery_app(settings)
        self.redis = redis_client(settings)
        self.sleep = sleep

    def run(self, tasks: Sequence[Task], here: Callable[[], None], each: Callable[[Task, Outcome], None]) -> None:
        """Reattach to or publish every task, then hand each outcome to ``each`` as it arrives; a task
        whose worker's claim lapsed without an outcome (the worker died) is published again.
        InfrastructureError when a task failed on its worker, or none answered within the time
        limit plus the visibility timeout (its dispatch row stays for ``resume``). A task revoked by
        its subject's halt is answered ``{"halted": True}``, as a worker answers one it got after the halt."""
        waiting = {task.id: task for task in tasks}
        claimed = {task.id for task in tasks if self.reattach(task)}
        deadline = time.monotonic() + self.settings.time_limit + self.settings.visibility_timeout
        while waiting:
            for task_id, task in list(waiting.items()):
                result = self.app.AsyncResult(task_id)
                if result.state == "SUCCESS":
                    outcome = self.signed_outcome(task, result)
                    del waiting[task_id]
                    each(task, outcome)
                elif result.state == "REVOKED" and self.redis.exists(halt_key(task.subject)):
                    del waiting[task_id]  # revoked by a halt before it started: no host touched
                    each(task, {"halted": True})
                elif result.state in ("FAILURE", "REVOKED"):
                    raise InfrastructureError(f"task {task_id} ({task.kind}, zone {task.zone}) failed on its worker: "
                                              f"{result.result!r}; fix it, then resume")
                elif self.redis.exists(claim_key(task_id)):
                    claimed.add(task_id)
                elif task_id in claimed and not self.redis.exists(done_key(task_id)):
                    claimed.discard(task_id)  # its worker died mid-task: another of the zone takes it now
                    self.publish(task)
            if waiting and time.monotonic() > deadline:
                zones = ", ".join(sorted({t.zone for t in waiting.values()}))
                raise InfrastructureError(f"{len(waiting)} task(s) had no answer from the workers of zone(s) {zones} "
                                          f"within {self.settings.time_limit + self.settings.visibility_timeout:g} s; "
                                          "start `lab worker --queue ZONE` there, then resume")
            if waiting:
                self.sleep(POLL_S)

    def signed_outcome(self, task: Task, result: Any) -> Outcome:
        """The outcome a worker sealed for ``task``. One that does not open (altered in Redis,
        unsigned, or another task's) is never recorded: its result is forgotten, so ``resume``
        publishes the task again, and InfrastructureError says so."""
        try:
            return open_outcome(result.result, self.key, task.id)
        except Refused as exc:
            result.forget()
            raise InfrastructureError(f"the outcome of task {task.id} ({task.kind}, zone {task.zone}) was refused: "
                                      f"{exc}; nothing of it was recorded. Find out who can write to the broker, "
                                      "then resume: the task is asked of its worker again") from None

    def reattach(self, task: Task) -> bool:
        """Finished, or running (claimed by a live worker: True): leave it; otherwise (new, queued,
        failed, or lost with a worker that died) publish it (again) under its id."""
        result = self.app.AsyncResult(task.id)
        if result.state == "SUCCESS":
            return False
        if result.state == "FAILURE":
            result.forget()  # it failed on its worker before this resume: its cause may be fixed, so it runs again
        if self.redis.exists(claim_key(task.id)):
            return True
        self.publish(task)  # a task done whose result Celery never stored too: its worker answers it again
        return False

    def publish(self, task: Task) -> None:
        """Send ``task``, sealed, to its zone's queue under its own id."""
        self.app.send_task(TASK_NAME, args=[seal(task, self.key)], task_id=task.id, queue=task.zone)

    def halt(self, subject: str) -> None:
        """Set ``subject``'s halt flag (workers check it before each task) and revoke its queued tasks,
        rollbacks excepted (the halt calls for them)."""
        self.redis.set(halt_key(subject), "1", ex=KEPT_S)
        queued = [task_id for task_id, _, state, kind in Dispatches(self.store).of(subject)
                  if state != "done" and kind not in UNSTOPPABLE]
        if queued:
            self.app.control.revoke(queued)

    def share(self, artifact: Path, digest: str) -> None:
        assert self.settings.share is not None
        publish(self.settings.share, artifact, digest)

    def close(self) -> None:
        self.redis.close()

