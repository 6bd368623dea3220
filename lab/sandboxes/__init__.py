"""Sandbox providers: they create, reset and destroy lab servers."""
