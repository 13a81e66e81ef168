"""Which model judges: a `--judge` spec as an agent config, built as pairing files build theirs.

A spec is an agent of any pairing or panel file, `FILE:AGENT` (its provider, model, endpoint, key
variable, headers, sampling, thinking, price, limits and `[retry]` table; not its role prompt,
which the judge's prompt replaces), or a short form:

    local                 the bundled local model      local:PATH   a GGUF file
    scripted              a scripted judge that always answers the scheme's first label
    scripted:LABEL        a scripted judge that always answers LABEL (for demos and tests;
                          a file's scripted agent can reply anything, and with `when`,
                          by what it is shown)
    openai:MODEL          OpenAI's API, key in OPENAI_API_KEY
    anthropic:MODEL       Anthropic's API, key in ANTHROPIC_API_KEY

A short form is the agent table `{provider = ..., model = ...}` checked by the pairing loader, so it
gets every default an agent of a file would get. The judge is the one agent of a panel spec, so
its key is read (`resolve_credentials`) and its provider made (`make_provider`) exactly as a
run's are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from intermodel.coding.scheme import Scheme
from intermodel.config.loader import build_panel, load_config, normalise_panel
from intermodel.config.model import AgentConfig, Panel
from intermodel.errors import UsageError

__all__ = ["SHORT_FORMS", "JudgeModel", "resolve_judge"]

SHORT_FORMS = ("local", "scripted", "openai", "anthropic")
_NEEDS_MODEL = ("openai", "anthropic")
_EXAMPLES = "local, scripted, openai:MODEL, anthropic:MODEL, or FILE:AGENT"


@dataclass(frozen=True)
class JudgeModel:
    spec: str  # as given: what label records name the judge by
    agent: AgentConfig
    run_spec: Panel  # the judge as the one agent of a panel: for its key and retry policy

    @property
    def limit_key(self) -> str:
        """What `[limits]` would call its endpoint: the base URL, else the provider."""
        return self.agent.base_url or self.agent.provider


def resolve_judge(spec: str, scheme: Scheme) -> JudgeModel:
    """The judge `spec` names, to code under `scheme`. ConfigError (a file's problems, a bad
    model) or UsageError (a spec of neither form), both exit code 2."""
    text = spec.strip()
    provider, colon, model = text.partition(":")
    if provider in SHORT_FORMS:
        if not model and provider in _NEEDS_MODEL:
            raise UsageError(f"--judge {text}: name the model, as {provider}:MODEL")
        if colon and not model:
            raise UsageError(f"--judge {text}: expected {_EXAMPLES}")
        return _short(text, provider, model, scheme)
    file, colon, name = text.rpartition(":")
    if not colon or not file or not name:
        raise UsageError(f"--judge {text[:80]!r}: expected {_EXAMPLES}")
    config = load_config(Path(file))
    if name not in config.agent_names:
        raise UsageError(f"--judge {text}: {file} has no agent {name!r} (it has "
                         f"{', '.join(config.agent_names)})")
    agent = config.agent(name)
    panel = Panel(name=config.name, description=config.description, agents=(agent,),
                  retry=config.retry, transcripts=config.transcripts, source=config.source,
                  prompt="(judging)")
    return JudgeModel(text, agent, panel)


def _short(spec: str, provider: str, model: str, scheme: Scheme) -> JudgeModel:
    table: dict[str, object] = {"provider": provider}
    if provider == "scripted":
        label = model or scheme.label_names[0]
        answer = json.dumps({"label": label, "rationale": "A scripted judge's answer."})
        # Its replies are templates: braces are doubled to stay braces.
        table["script"] = {"replies": [answer.replace("{", "{{").replace("}", "}}")]}
    elif model:
        table["model"] = model
    raw = {"name": "judge", "panel": {"prompt": "(judging)"}, "agents": {"judge": table}}
    source = f"--judge {spec}"
    panel = build_panel(normalise_panel(raw, source=source, base_dir=Path("."),
                                        default_name="judge"), source=source)
    return JudgeModel(spec, panel.agents[0], panel)
