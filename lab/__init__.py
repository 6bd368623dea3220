"""lab: a test-lab pipeline for staged software rollout."""

__version__ = "0.1.0"
