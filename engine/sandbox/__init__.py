"""Sandboxes: run a process under a security policy (see engine.sandbox.base.Runner)."""

from __future__ import annotations

from engine.sandbox._bwrap import BWRAP_ENV, bwrap_argv, bwrap_path, probe_bwrap
from engine.sandbox._process import (
    TOKEN_VAR,
    kill_step,
    new_token,
    step_processes,
    token_processes,
)
from engine.sandbox._runners import BwrapRunner, LimitedRunner, PlainRunner, rlimit_args
from engine.sandbox._select import check_enforceable, runner_for
from engine.sandbox.base import CommandResult, PreparedCommand, Runner
from engine.sandbox.env import minimal_env

__all__ = (
    "BWRAP_ENV",
    "TOKEN_VAR",
    "BwrapRunner",
    "CommandResult",
    "LimitedRunner",
    "PlainRunner",
    "PreparedCommand",
    "Runner",
    "bwrap_argv",
    "bwrap_path",
    "check_enforceable",
    "kill_step",
    "minimal_env",
    "new_token",
    "probe_bwrap",
    "rlimit_args",
    "runner_for",
    "step_processes",
    "token_processes",
)
