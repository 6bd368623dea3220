"""Which executor runs campaign cells and rollout shards: ``inprocess`` (this process's threads,
the default) or ``celery`` (zone workers behind a Redis broker), from lab.yml's ``executor:``
section, ``$LAB_EXECUTOR`` or ``--executor``.

    executor:
      kind: celery
      broker: redis://127.0.0.1:6379/0   # loopback or a TLS (rediss://) broker; the URL holds no password
      share: /srv/lab-share               # artifacts by sha256: the controller puts, workers fetch and check
      key_file: /etc/lab/executor.key     # the shared HMAC key that signs every task (never in a message)
      visibility_timeout: 3600            # seconds before Redis gives an unacknowledged task to another worker
      time_limit: 3000                    # seconds a task may run; below visibility_timeout

The override (``$LAB_EXECUTOR`` / ``--executor``) names the kind only: ``inprocess`` runs in this
process whatever lab.yml says; ``celery`` needs the section's broker, share and key file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.util.yamlfile import line_of

KINDS = ("inprocess", "celery")
DEFAULT_VISIBILITY = 3600.0
TIME_LIMIT_MARGIN = 0.9  # a task's default time limit: this share of the visibility timeout


@dataclass(frozen=True)
class ExecutorSettings:
    """How work is dispatched. For ``celery``: the broker URL, the artifact share, the key file, and
    the broker's visibility timeout with the task time limit below it (so a task still running is
    never handed to a second worker)."""

    kind: str = "inprocess"
    broker: str = ""
    share: Path | None = None
    key_file: Path | None = None
    visibility_timeout: float = DEFAULT_VISIBILITY
    time_limit: float = DEFAULT_VISIBILITY * TIME_LIMIT_MARGIN

    @property
    def remote(self) -> bool:
        return self.kind != "inprocess"


DEFAULT_EXECUTOR = ExecutorSettings()


def executor_settings(raw: dict[str, Any] | None, override: str | None, root: Path, source: Path,
                      data: Any) -> ExecutorSettings:
    """lab.yml's ``executor:`` section (``raw``, schema-checked), with ``override`` (a kind) over it.

    ConfigError naming lab.yml and the line: an unknown kind, a celery executor without broker, share
    or key file, or a time limit not below the visibility timeout."""
    section = dict(raw or {})
    line = line_of(data, ["executor"])
    kind = override or section.get("kind", "inprocess")
    if kind not in KINDS:
        raise ConfigError(f"executor {kind!r} is not known; use one of: {', '.join(KINDS)} "
                          f"({'$LAB_EXECUTOR or --executor' if override else 'executor.kind'})",
                          source=str(source), line=None if override else line)
    if kind == "inprocess":
        return DEFAULT_EXECUTOR
    missing = [key for key in ("broker", "share", "key_file") if not section.get(key)]
    if missing:
        raise ConfigError(f"the celery executor needs executor.{', executor.'.join(missing)} in lab.yml (the "
                          "broker URL, the artifact share directory and the file holding the signing key)",
                          source=str(source), line=line)
    visibility = float(section.get("visibility_timeout", DEFAULT_VISIBILITY))
    limit = float(section.get("time_limit", visibility * TIME_LIMIT_MARGIN))
    if limit >= visibility:
        raise ConfigError(f"executor.time_limit ({limit:g} s) must be below executor.visibility_timeout "
                          f"({visibility:g} s), or Redis hands a task still running to a second worker",
                          source=str(source), line=line_of(data, ["executor", "time_limit"]) or line)
    return ExecutorSettings(kind, str(section["broker"]), (root / str(section["share"])).resolve(),
                            (root / str(section["key_file"])).resolve(), visibility, limit)
