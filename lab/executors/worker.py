"""``lab worker --queue ZONE``: a Celery worker that runs the tasks of one zone on this machine.

Before running a task the worker checks, in order: the envelope's HMAC (an unsigned or tampered
task is refused and logged, never run), that the task is for this zone, the subject's halt flag
(a halted rollout's task is answered ``halted`` without touching a host; a rollback task is
run all the same: the halt calls for it), whether the task id
was done already (its outcome is answered again: a task delivered twice runs once; a done marker
whose HMAC does not open is dropped and the task runs again), and a
claim on the task id (another worker on the same id: wait for its outcome). A claim lives 30 s
unless its worker renews it while the task runs, so a worker killed mid-task frees it soon. The work itself is
the handler of the task's kind, with this machine's lab: its inventory, secrets and vault. Every
answer is the outcome sealed with the lab's key and bound to the task's id (``seal_outcome``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lab.config.executor import ExecutorSettings
from lab.errors import ConfigError
from lab.executors.base import UNSTOPPABLE, Outcome, Task
from lab.executors.celery import KEPT_S, TASK_NAME, celery_app, claim_key, done_key, halt_key, redis_client
from lab.executors.signing import Refused, open_envelope, open_outcome, read_key, seal_outcome

LOG = logging.getLogger("lab.worker")
Handler = Callable[[Task], Outcome]
WAIT_S = 0.5
CLAIM_TTL_S = 30  # a claim lives this long unless its worker renews it: a worker killed mid-task frees it soon
# Celery's own worker options (not lab's): one process, one task at a time, no peer chatter.
CELERY_WORKER = ["worker", "--concurrency", "1", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
                 "--loglevel", "INFO"]


class TaskRefused(Exception):
    """A task this worker will not run (unsigned, tampered, another zone's); the controller sees it failed."""


class Worker:
    """What runs each task delivered to this zone's worker."""

    def __init__(self, settings: ExecutorSettings, zone: str, handlers: Mapping[str, Handler]) -> None:
        if settings.key_file is None:
            raise ConfigError("the worker needs lab.yml's executor section (kind: celery, broker, share, key_file)")
        self.settings = settings
        self.zone = zone
        self.handlers = dict(handlers)
        self.key = read_key(settings.key_file)
        self.redis = redis_client(settings)
        self.name = f"{zone}@{socket.gethostname()}-{os.getpid()}"

    def handle(self, envelope: Any, delivered_as: str | None) -> dict[str, Any]:
        """The signed outcome (``seal_outcome``) of the task in ``envelope``: run here, or taken
        from an earlier run of its id."""
        try:
            task = open_envelope(envelope, self.key, delivered_as)
        except Refused as exc:
            LOG.error("refused task %s: %s", delivered_as, exc)
            raise TaskRefused(f"refused by worker {self.name}: {exc}") from None
        if task.zone != self.zone or task.kind not in self.handlers:
            LOG.error("refused task %s: zone %s, kind %s", task.id, task.zone, task.kind)
            raise TaskRefused(f"refused by worker {self.name}: a {task.kind} task of zone {task.zone}")
        if task.kind not in UNSTOPPABLE and self.redis.exists(halt_key(task.subject)):
            LOG.info("task %s: %s is halted; not run", task.id, task.subject)
            return seal_outcome(task.id, {"halted": True}, self.key)
        while True:
            done = self.done_before(task.id)
            if done is not None:
                LOG.info("task %s was done already; its outcome is answered again", task.id)
                return done
            if self.redis.set(claim_key(task.id), self.name, nx=True, ex=CLAIM_TTL_S):
                break
            time.sleep(WAIT_S)  # another worker runs this very task: its outcome is this one's
        running = threading.Event()
        renew = threading.Thread(target=self.renew, args=(task.id, running), daemon=True)
        renew.start()
        try:
            answer = seal_outcome(task.id, self.handlers[task.kind](task), self.key)
            self.redis.set(done_key(task.id), json.dumps(answer), ex=KEPT_S)
            return answer
        finally:
            running.set()
            renew.join()
            self.redis.delete(claim_key(task.id))

    def done_before(self, task_id: str) -> dict[str, Any] | None:
        """The signed outcome an earlier run of ``task_id`` left, if any. A done marker that does
        not open (altered in Redis) is dropped, so the task runs again: its host steps are
        idempotent, and a forged outcome must never be answered."""
        done = self.redis.get(done_key(task_id))
        if done is None:
            return None
        try:
            answer: dict[str, Any] = json.loads(done)
            open_outcome(answer, self.key, task_id)
        except (ValueError, Refused) as exc:
            LOG.error("task %s: its done marker was refused (%s); the task runs again", task_id, exc)
            self.redis.delete(done_key(task_id))
            return None
        return answer

    def renew(self, task_id: str, ended: threading.Event) -> None:
        """Keep this worker's claim on ``task_id`` alive until ``ended``."""
        while not ended.wait(CLAIM_TTL_S / 3):
            self.redis.expire(claim_key(task_id), CLAIM_TTL_S)


def serve(settings: ExecutorSettings, zone: str, handlers: Mapping[str, Handler]) -> None:
    """Run a Celery worker for ``zone``'s queue until it is stopped: one task at a time, each
    acknowledged only when done."""
    worker = Worker(settings, zone, handlers)
    app = celery_app(settings)

    @app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
    def run(self: Any, envelope: Any) -> dict[str, Any]:
        return worker.handle(envelope, self.request.id)

    app.worker_main([*CELERY_WORKER, "--queues", zone, "--hostname", worker.name])
