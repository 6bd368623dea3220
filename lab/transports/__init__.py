"""Transports: how the lab reaches a sandbox to verify it (local, ssh, winrm)."""
