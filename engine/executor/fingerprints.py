"""What a step of a workflow text is, for a resume: a finished step is reused only while its
fingerprint (its own YAML and what it uses of the rest of the file) is the same in the text
the run recorded and in the file now."""

from __future__ import annotations

import json
from typing import Any

#: keys of a step (or `defaults`) that govern how it is attempted or described, never what a
#: finished attempt produced: raising a timeout that cut a step off, or adding retries, must
#: not make the steps that had finished count as changed
_HOW_ATTEMPTED = frozenset(("retry", "timeout", "continue_on_error", "description",
                            "max_parallel"))

#: the parts of a workflow a step may use: of each, a step's fingerprint holds what it uses
_USED = ("providers", "mcp_servers", "policies")


def step_fingerprints(text: Any, inputs: set[str]) -> dict[str, str]:
    """What each step of the workflow `text` is: its own definition, the declarations of the
    run's own inputs (`inputs`, without their descriptions), `defaults`, and the providers,
    MCP servers and policies the step can use. A provider, server or policy that a finished
    step does not use (one added for the step that failed, say) does not change it; when
    what a step uses cannot be told from the text, it counts as using all of them."""
    if not isinstance(text, str):
        return {}
    from engine.spec.yaml_source import parse

    data = parse(text).data
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict):
        return {}
    declared = data.get("inputs")
    if isinstance(declared, dict):
        declared = {k: _what_it_produces(v) for k, v in declared.items() if k in inputs}
    common = {"inputs": declared, "defaults": _what_it_produces(data.get("defaults"))}
    prints = {}
    for sid, step in steps.items():
        used = _uses(step, data)
        shared = {**common, **{part: _subset(data.get(part), used[part]) for part in _USED}}
        prints[sid] = json.dumps(_what_it_produces(step), sort_keys=True, default=str) + \
            json.dumps(shared, sort_keys=True, default=str)
    return prints


def _subset(part: Any, names: set[str] | None) -> Any:
    """The entries of `part` (providers, mcp_servers or policies) named in `names` (None:
    all of it)."""
    if names is None or not isinstance(part, dict):
        return part
    return {name: part[name] for name in sorted(names) if name in part}


def _uses(step: Any, data: dict[str, Any]) -> dict[str, set[str] | None]:
    """The providers, MCP servers and policies `step` can use, by name (None: all)."""
    everything: dict[str, set[str] | None] = dict.fromkeys(_USED)
    if not isinstance(step, dict) or "workflow" in step:  # a sub-workflow: its own file
        return everything
    providers = _provider_chain(step.get("llm"), data.get("providers")) if "llm" in step \
        else set()
    servers = _servers(step)
    if providers is None or servers is None:
        return everything
    defaults = data.get("defaults")
    default = defaults.get("policy") if isinstance(defaults, dict) else None
    policies = {step.get("policy") or default}
    declared = data.get("mcp_servers")
    for server in servers:
        spec = declared.get(server) if isinstance(declared, dict) else None
        policies.add(spec.get("policy") if isinstance(spec, dict) else None)
    if not all(isinstance(p, str) or p is None for p in policies):
        return everything
    return {"providers": providers, "mcp_servers": servers,
            "policies": {p for p in policies if isinstance(p, str)}}


def _provider_chain(name: Any, providers: Any) -> set[str] | None:
    """`name` and the fallbacks it may go on to, and theirs (None: cannot be told)."""
    if not isinstance(providers, dict):
        return None
    chain: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if not isinstance(current, str):
            return None
        if current in chain:
            continue
        chain.add(current)
        spec = providers.get(current)
        fallback = spec.get("fallback") if isinstance(spec, dict) else None
        if isinstance(fallback, list):
            todo.extend(fallback)
        elif fallback is not None:
            return None
    return chain


def _servers(step: dict[str, Any]) -> set[str] | None:
    """The MCP servers `step` calls: its tool's, prompt's or resource's, or its agent tools'
    (`server.tool`, `server.*`) (None: cannot be told)."""
    named: list[Any] = []
    for key in ("tool", "mcp_prompt"):
        if key in step:
            named.append(step[key])
    tools = step.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return None
        named.extend(tools)
    servers = set()
    for value in named:
        if not isinstance(value, str) or "." not in value:
            return None
        servers.add(value.split(".", 1)[0])
    if "resource" in step:
        if not isinstance(step["resource"], str):
            return None
        servers.add(step["resource"])
    return servers


def _what_it_produces(definition: Any) -> Any:
    if not isinstance(definition, dict):
        return definition
    return {k: v for k, v in definition.items() if k not in _HOW_ATTEMPTED}
