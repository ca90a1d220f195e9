"""Sandboxes: run a process under a security policy (see engine.sandbox.base.Runner)."""
