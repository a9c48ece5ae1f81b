"""Per-agent behavioural baselines learned from past runs (``sentrail baseline learn``)."""

from __future__ import annotations

import msgspec

BASELINE_FORMAT = "sentrail.baselines/1"
START = "^"  # the pseudo-tool before a run's first call


class AgentBaseline(msgspec.Struct, omit_defaults=True):
    runs: int = 0
    calls: int = 0
    tools: dict[str, int] = msgspec.field(default_factory=dict)
    transitions: dict[str, int] = msgspec.field(default_factory=dict)  # "a -> b": count
    trigrams: dict[str, int] = msgspec.field(default_factory=dict)  # "a -> b -> c": count
    permissions: dict[str, int] = msgspec.field(default_factory=dict)


class Baselines(msgspec.Struct):
    """Written whole (the ``format`` marker included) by ``sentrail baseline learn``."""

    format: str = BASELINE_FORMAT
    ngram: int = 2
    agents: dict[str, AgentBaseline] = msgspec.field(default_factory=dict)

    def get(self, agent_id: str) -> AgentBaseline | None:
        return self.agents.get(agent_id)
