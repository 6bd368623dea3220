"""Executors: where campaign cells and rollout shards run. ``inprocess`` (this process's threads, the
default) or ``celery`` (zone workers behind Redis); ``lab.executors.base`` is the contract."""
