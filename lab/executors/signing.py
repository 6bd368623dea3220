"""Signed task messages and signed outcomes: an HMAC-SHA256 envelope over the task (controller to
worker) and over the task's outcome (worker to controller), with a key both ends read from a
file (lab.yml's ``executor.key_file``), never from a message or a command line.

Why not Celery's ``auth`` serializer: it signs with X.509 keys and certificates (a PKI to run,
and the ``cryptography`` package) where one shared secret per lab, kept like the vault password,
gives what a worker needs: it runs only a task a holder of the key made, unaltered. The price
of a symmetric key: any holder (a worker too) could sign; keep the file readable by the lab's
service accounts only. The envelope binds the task id and kind, so a payload cannot be replayed
under another id; an outcome's envelope binds the id of the task it answers, so one task's
outcome cannot stand for another's. The controller records only outcomes that open: Redis (its
result backend, the workers' done markers) is a dispatcher, not a place trusted with evidence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.executors.base import Outcome, Task

MIN_KEY_BYTES = 32


class Refused(Exception):
    """A task message that is unsigned, tampered with, or signed with another key."""


def read_key(path: Path) -> bytes:
    """The signing key from ``path``: at least 32 bytes; ConfigError naming the file otherwise."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"the executor's key file cannot be read ({exc}); create it with e.g. "
                          f"`head -c 32 /dev/urandom | base64 > {path}` and chmod 600", source=str(path)) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the executor's key file holds {len(key)} bytes; it needs at least {MIN_KEY_BYTES} "
                          f"(e.g. `head -c 32 /dev/urandom | base64 > {path}`)", source=str(path))
    return key


def sealed(data: Any, key: bytes) -> dict[str, Any]:
    """The envelope of ``data``: its canonical JSON and the HMAC-SHA256 of it."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return {"body": body, "hmac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}


def opened(envelope: Any, key: bytes, what: str) -> Any:
    """The data in ``envelope`` when its HMAC is right; Refused (naming ``what``) otherwise."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), str) \
            or not isinstance(envelope.get("hmac"), str):
        raise Refused(f"unsigned {what} (no HMAC envelope)")
    expected = hmac.new(key, envelope["body"].encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, envelope["hmac"]):
        raise Refused(f"{what} with a wrong HMAC: tampered with, or signed with another key")
    return json.loads(envelope["body"])


def seal(task: Task, key: bytes) -> dict[str, Any]:
    """The envelope of ``task``: its canonical JSON and the HMAC-SHA256 of it."""
    return sealed(task.to_json(), key)


def open_envelope(envelope: Any, key: bytes, task_id: str | None) -> Task:
    """The task in ``envelope`` when its HMAC is right and it names ``task_id``; Refused otherwise."""
    task = Task.from_json(opened(envelope, key, "task message"))
    if task_id is not None and task.id != task_id:
        raise Refused(f"signed task {task.id} delivered under another id {task_id}")
    return task


def seal_outcome(task_id: str, outcome: Outcome, key: bytes) -> dict[str, Any]:
    """The envelope of the outcome of task ``task_id``, which binds the two."""
    return sealed({"task": task_id, "outcome": outcome}, key)


def open_outcome(envelope: Any, key: bytes, task_id: str) -> Outcome:
    """The outcome in ``envelope`` when its HMAC is right and it answers ``task_id``; Refused otherwise."""
    data = opened(envelope, key, "task outcome")
    if not isinstance(data, dict) or not isinstance(data.get("outcome"), dict):
        raise Refused("signed task outcome without an outcome")
    if data.get("task") != task_id:
        raise Refused(f"signed outcome of task {data.get('task')} given as the outcome of task {task_id}")
    outcome: Outcome = data["outcome"]
    return outcome
