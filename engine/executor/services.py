"""The services a run's steps use, created lazily and closed when the run ends: the secrets and
their redactor, the provider registry, the MCP runtime, and a sandbox runner per policy.

Before any step starts, entering Services checks what it can: secrets exist, provider keys
exist, and every policy the run uses can be enforced here (fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.secrets import Redactor, literal_secret_values, load_secrets
from engine.state.store import ItemRow, StepRow, item_row, step_row

if TYPE_CHECKING:
    from engine.executor.context import RunContext, RunOptions
    from engine.executor.handlers import Outcome
    from engine.executor.result import StepResult
    from engine.mcp import MCPRuntime
    from engine.policy import Policy
    from engine.providers import ProviderRegistry
    from engine.sandbox.base import Runner
    from engine.spec.models import MCPServerSpec
    from engine.spec.workflow import Workflow


class Services:
    def __init__(self, workflow: Workflow, options: RunOptions,
                 inputs: dict[str, Any] | None = None) -> None:
        self.workflow = workflow
        self.options = options
        self.inputs = inputs or {}
        self.environ = dict(options.environ if options.environ is not None else os.environ)
        self.secrets: dict[str, str] = {}
        self.redactor = Redactor(())
        self._stack = AsyncExitStack()
        self._providers: ProviderRegistry | None = None
        self._mcp: MCPRuntime | None = None
        self._servers: dict[str, Any] = {}
        self._mcp_lock = anyio.Lock()
        self._policies: dict[str | None, Policy] = {}
        self._runners: dict[str | None, Runner] = {}
        self.weaker: list[str] = []
        self.cassette: Any = None  # engine.cassettes.Cassette under --record / --replay
        #: where MCP servers' stderr is kept (the run's log directory), if anywhere
        self.log_dir: Path | None = None

    def load_secrets(self) -> None:
        """Read the declared secrets (environment, then a .env next to the workflow)."""
        spec = self.workflow.spec
        self.secrets = load_secrets(spec.secrets, env=self.environ,
                                    dotenv_path=self.workflow.base_dir / ".env")
        self.redactor = Redactor.from_env(spec.secrets, env=self.environ)
        self.redactor.add(*self.secrets.values(), *literal_secret_values(spec),
                          *self.options.inherited_secrets)

    async def __aenter__(self) -> Services:
        spec = self.workflow.spec
        if self.options.record_dir is not None or self.options.replay_dir is not None:
            from engine.cassettes.hooks import open_for_run

            self.cassette = open_for_run(self.workflow, self.options, self.environ)
        self.load_secrets()
        if self.cassette is not None:
            self.cassette.redact = self.redact
        self._check_policies()
        if self.workflow.has_kind("llm"):
            self.providers().check()
        if spec.mcp_servers:
            if self.cassette is None or not self.cassette.offline:  # servers will start
                from engine.mcp.runtime import require_sdk

                require_sdk()
            await self.mcp()  # entered here, in the run's own task; servers start on first use
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._providers is not None:
                with anyio.CancelScope(shield=True):
                    await self._providers.aclose()
            if self.cassette is not None:
                from engine.cassettes import release

                release(self.cassette)

    # ------------------------------------------------------------ rendering settings

    def settings(self, compiled: Any, path: tuple[str, str]) -> Any:
        """Provider or server settings (at `path`: ("providers", name) or ("mcp_servers",
        name)) with their ${{ inputs/secrets/env }} filled in."""
        from engine.errors import ExpressionError
        from engine.executor.context import failed_at, public_env, subpath_text

        ctx = {"secrets": self.secrets, "env": public_env(self.environ),
               "inputs": self.inputs}
        try:
            return compiled.render(ctx)
        except ExpressionError as exc:
            where, _ = failed_at(self.workflow, path, exc)
            what = "provider" if path[0] == "providers" else "MCP server"
            inner = subpath_text(exc.subpath).lstrip(".")  # the setting: `model`, `env.KEY`
            at = f", `{inner}`" if inner else ""
            raise ExpressionError(f"{where}: {what} {path[1]!r}{at}: {exc.message}",
                                  hint=exc.hint) from exc

    # ------------------------------------------------------------ providers

    def providers(self) -> ProviderRegistry:
        if self._providers is None:
            from engine.providers import ProviderRegistry
            from engine.spec.models import ProviderSpec

            specs = {}
            for name, provider in self.workflow.spec.providers.items():
                compiled = self.workflow.providers.get(name)
                specs[name] = ProviderSpec.model_validate(
                    self.settings(compiled, ("providers", name))) \
                    if compiled is not None and not compiled.is_literal else provider
                secret_key = specs[name].api_key
                if secret_key:
                    self.redactor.add(secret_key)
            self._providers = ProviderRegistry.from_specs(
                specs, env=self.environ, pricing=self.workflow.spec.pricing)
            if self.cassette is not None or any(s.kind == "replay" for s in specs.values()):
                from engine.cassettes.hooks import prepare_registry

                prepare_registry(self._providers, self.workflow, self.cassette)
            if self.options.tracer is not None:
                self._providers.add_wrapper(
                    self.options.tracer.provider_wrapper(self.redactor.redact,
                                                        content=self.options.trace_content))
        return self._providers

    # ------------------------------------------------------------ MCP

    async def mcp(self) -> MCPRuntime:
        async with self._mcp_lock:
            if self._mcp is None:
                self._servers = {name: self.server_spec(name)
                                 for name in self.workflow.spec.mcp_servers}
                pool = self.options.mcp_pool
                if pool is not None and self.cassette is None:
                    # servers stay up for the next run of the same settings (plait batch); the
                    # runtime's own redactor gathers the secrets of every run that uses it
                    # (its spans are masked with it too: with more secrets, never fewer)
                    key = self._pool_key()
                    self._mcp = await pool.get(key, lambda: self._new_runtime(Redactor()))
                    self._stack.callback(pool.release, key)  # when the run ends
                    self._mcp.manager.redactor.update(self.redactor)
                    self._mcp.manager.begin_run()  # its own budget of server restarts
                else:
                    self._mcp = await self._stack.enter_async_context(
                        self._new_runtime(self.redactor))
            return self._mcp

    def mcp_runtime(self) -> MCPRuntime:
        """A runtime of the workflow's MCP servers as a run starts them (settings rendered,
        each server under the sandbox of its policy, tool arguments checked against it),
        not entered: for `plait mcp tools` and `plait mcp call`, which own it."""
        from engine.mcp.runtime import require_sdk

        require_sdk()
        self._servers = {name: self.server_spec(name) for name in self.workflow.spec.mcp_servers}
        return self._new_runtime(self.redactor)

    def _new_runtime(self, redactor: Redactor) -> MCPRuntime:
        """A runtime whose servers' stderr logs (and MCP spans) are masked by `redactor`."""
        from dataclasses import replace

        from engine.mcp import MCPRuntime, MCPSettings

        settings = replace(MCPSettings.from_env(), log_dir=self.log_dir)
        runtime = MCPRuntime(self._servers, base_dir=self.workflow.base_dir, settings=settings,
                             runner_for=self._server_runner, validator=self._tool_validator,
                             request_validator=self._request_validator,
                             policies=self.workflow.spec.policies,
                             default_policy=self.workflow.spec.defaults.policy,
                             redactor=redactor)
        if self.cassette is not None:
            self.cassette.attach_tools(runtime.executor)
        tracer = self.options.tracer
        if tracer is not None:
            traced: dict[str, Any] = {"content": self.options.trace_content, "transports": {
                n: "stdio" if s.command else "http" for n, s in self._servers.items()}}
            runtime.executor.add_wrapper(tracer.tool_wrapper(redactor.redact, **traced))
            runtime.executor.add_request_wrapper(
                tracer.request_wrapper(redactor.redact, **traced))
        return runtime

    def _pool_key(self) -> str:
        """Runs share a runtime only when everything that shapes it is the same."""
        import json

        spec = self.workflow.spec
        return json.dumps({
            "base": str(self.workflow.base_dir),
            "servers": {n: s.model_dump(mode="json") for n, s in self._servers.items()},
            "policies": {n: p.model_dump(mode="json") for n, p in spec.policies.items()},
            "default": spec.defaults.policy, "weaker": self.options.allow_weaker_sandbox,
            # the runtime's MCP spans go to the tracer it was made with
            "tracer": id(self.options.tracer) if self.options.tracer is not None else None,
            "content": self.options.trace_content,
        }, sort_keys=True)

    def server_spec(self, name: str) -> MCPServerSpec:
        """The server's settings with ${{ inputs/secrets/env }} rendered."""
        from engine.spec.models import MCPServerSpec

        compiled = self.workflow.servers.get(name)
        if compiled is None or compiled.is_literal:
            return self.workflow.spec.mcp_servers[name]
        return MCPServerSpec.model_validate(self.settings(compiled, ("mcp_servers", name)))

    async def tool_caller(self, patterns: list[str], step_id: str,
                          policy: str | None = None) -> Any:
        """The tools of an agent step; `policy`, the step's own, checks each call too."""
        from engine.executor.agent_tools import MCPToolCaller

        runtime = await self.mcp()
        definitions = await (self.cassette.tool_definitions(patterns, runtime)
                             if self.cassette is not None
                             else runtime.tool_definitions(patterns))
        return MCPToolCaller(runtime, definitions, step_id, redact=self.redactor.redact,
                             check=self.step_tool_check(policy))

    def _server_runner(self, name: str, server: Any) -> Runner | None:
        return self.runner(server.policy or self.workflow.spec.defaults.policy)

    def _server_policy(self, server: str) -> Policy:
        """The policy a server's tool calls, resource reads and prompt gets are checked
        against: the server's `policy:`, else `defaults.policy`."""
        spec = self.workflow.spec.mcp_servers.get(server)
        return self.policy((spec.policy if spec else None) or self.workflow.spec.defaults.policy)

    def _tool_validator(self, tool: str, arguments: Any) -> None:
        self._check_tool(self._server_policy(tool.split(".", 1)[0]), tool, arguments)

    def _request_validator(self, server: str, method: str, params: Any) -> None:
        self._check_request(self._server_policy(server), server, method, params)

    def step_tool_check(self, name: str | None) -> Callable[[str, Any], None] | None:
        """A step's own `policy:` as a check of its tool calls, made after their server's
        policy's (so it can only refuse more); None for a step without one."""
        if name is None:
            return None
        policy = self.policy(name)
        return lambda tool, arguments: self._check_tool(policy, tool, arguments)

    def step_request_check(self, name: str | None) -> Callable[[str, str, Any], None] | None:
        """A step's own `policy:` as a check of its resource read or prompt get."""
        if name is None:
            return None
        policy = self.policy(name)
        return lambda server, method, params: self._check_request(policy, server, method,
                                                                  params)

    def _check_tool(self, policy: Policy, tool: str, arguments: Any) -> None:
        from engine.policy import check_tool_arguments

        server = tool.split(".", 1)[0]
        check_tool_arguments(policy, tool, arguments, cwd=self._tool_base(server))

    def _check_request(self, policy: Policy, server: str, method: str, params: Any) -> None:
        """A resource read's URI is a read (engine.policy._resource); a prompt get's
        arguments are checked as a tool call's."""
        from engine.policy import check_prompt_arguments, check_resource_uri

        base = self._tool_base(server)
        if method == "resources/read":
            check_resource_uri(policy, params["uri"], cwd=base)
        else:
            check_prompt_arguments(policy, f"{server}.{params['name']}", params["arguments"],
                                   cwd=base)

    def _tool_base(self, server: str) -> Path:
        """What a server resolves relative paths against: its `--root` (the bundled servers'
        convention) or else its working directory."""
        base = self.workflow.base_dir
        spec = self._servers.get(server)
        if spec is None:
            return base
        args = list(spec.args)
        for flag in ("--root", "--directory", "--repository"):
            if flag in args and args.index(flag) + 1 < len(args):
                return (base / str(args[args.index(flag) + 1])).resolve()
        return (base / spec.cwd).resolve() if spec.cwd else base

    # ------------------------------------------------------------ policies and sandboxes

    def policy(self, name: str | None) -> Policy:
        if name not in self._policies:
            from engine.policy import resolve_policy

            spec = self.workflow.spec.policies.get(name) if name else None
            self._policies[name] = resolve_policy(spec, name=name,
                                                  base_dir=self.workflow.base_dir,
                                                  env=self.environ)
        return self._policies[name]

    def runner(self, name: str | None) -> Runner:
        if name not in self._runners:
            from engine.sandbox import runner_for

            runner = runner_for(self.policy(name),
                                allow_weaker=self.options.allow_weaker_sandbox)
            if getattr(runner, "weaker", False):
                reason = getattr(runner, "weaker_reason", None)
                self.weaker.append(f"{name or 'default'}: {runner.name}"
                                   + (f" ({reason})" if reason else ""))
            self._runners[name] = runner
        return self._runners[name]

    def _check_policies(self) -> None:
        """Fail closed: every policy a step or server will use must be enforceable here."""
        wf = self.workflow
        spec = wf.spec
        used: set[str | None] = set()
        for sid, step in spec.steps.items():
            if wf.kind(sid) == "run":
                used.add(step.policy or spec.defaults.policy)
            elif step.policy is not None:  # checks tool calls: resolved, no sandbox
                self.policy(step.policy)
        offline = self.cassette is not None and self.cassette.offline  # no server will start
        for server in spec.mcp_servers.values():
            if server.command and not offline:
                used.add(server.policy or spec.defaults.policy)
        for name in sorted(used, key=str):
            self.runner(name)
        if used and spec.policies:
            from engine.policy import check_planted_roots

            check_planted_roots(spec.policies, wf.base_dir)

    def run_meta(self) -> dict[str, Any]:
        return {"weaker_sandbox": self.weaker} if self.weaker else {}

    def begin(self, previous_meta: Mapping[str, Any] | None, restored: Any = ()) -> None:
        """The run passed its checks and starts: only now may a --record cassette be written
        (a refused resume leaves an existing one as it was). A resume keeps the recorded
        interactions of its ``restored`` steps from the cassette the run wrote last time."""
        if self.cassette is not None:
            self.cassette.begin((previous_meta or {}).get("cassette"), restored)

    def saved_cassette(self) -> dict[str, str] | None:
        """The cassette this run wrote when it ended (path and digest), for its record."""
        return getattr(self.cassette, "saved", None)

    # ------------------------------------------------------------ records

    def redact(self, value: Any) -> Any:
        return self.redactor.redact_obj(value) if self.redactor else value

    def step_row(self, rc: RunContext, result: StepResult) -> StepRow:
        """`result` as a run-record row, secrets masked."""
        output = result.output
        events: list[Any] = result.notes
        if result.reason:
            events = [*events, {"reason": result.reason}]
        rendered, audit = result.rendered, result.audit
        if self.redactor:
            redact = self.redactor.redact_obj
            rendered, output, audit, events = (redact(rendered), redact(output),
                                               redact(audit), redact(events))
        return step_row(rc.run_id, result.step_id, result.status, result.attempts, rendered,
                        output, result.error, result.usage, result.cost, result.started_at,
                        result.finished_at, len(output) if isinstance(output, list) else None,
                        audit, events)

    def item_row(self, run_id: str, step_id: str, index: int, key: str, outcome: Outcome,
                 attempts: int, started: float, finished: float) -> ItemRow:
        """A finished foreach item as a run-record row, secrets masked."""
        redact = self.redact
        return item_row(run_id, step_id, index, key, attempts, redact(outcome.rendered),
                        redact(outcome.output), outcome.usage, outcome.cost, started, finished,
                        redact(outcome.audit), redact(outcome.notes))
