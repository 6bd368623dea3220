"""The executor lab.yml (or ``$LAB_EXECUTOR`` / ``--executor``) asks for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lab.config.executor import ExecutorSettings
from lab.errors import ConfigError
from lab.evidence.store import Store
from lab.executors.base import HERE, Executor
from lab.executors.celery import CeleryExecutor


def executor_for(settings: ExecutorSettings, store: Store) -> Executor:
    """``inprocess`` (this process's threads) or ``celery`` (ConfigError saying what to install when
    Celery is missing)."""
    if not settings.remote:
        return HERE
    try:
        return CeleryExecutor(settings, store)
    except ImportError as exc:
        raise ConfigError(f"the celery executor needs Celery with Redis ({exc}): pip install 'lab[celery]'") from None


@contextmanager
def opened(settings: ExecutorSettings, store: Store) -> Iterator[Executor]:
    """``executor_for``, closed when the block ends."""
    executor = executor_for(settings, store)
    try:
        yield executor
    finally:
        executor.close()
