"""Learning per-agent behavioural baselines from past runs (``sentrail baseline learn``).

Pure and streaming: runs are read one at a time and only counts are kept, so a directory of
any size can be learned in constant memory per agent. For each agent (``run.agent_id``):

- ``runs``: runs seen; ``calls``: tool calls seen (steps whose ``tool_call`` is not null);
- ``tools``: calls per tool;
- ``transitions``: ``"a -> b"`` counts, with ``"^"`` (``model.baseline.START``) as the
  pseudo-tool before a run's first call, so ``sum(transitions.values()) == calls``;
- ``trigrams``: ``"a -> b -> c"`` counts over the same sequence (``"^ -> a -> b"`` included);
- ``permissions``: how many steps used each permission.

A baseline learned from fewer than ``sentrail.detect.sequence.MIN_RUNS`` (5) runs is kept,
but ``unusual_sequence`` findings against it are info only: not enough history to call
anything unusual with confidence.

Typical use (what the CLI does)::

    baselines = learn(runs_from_directory(path))       # Iterable[Run] -> Baselines
    combined = merge(previous, baselines)              # add new history to stored counts
"""

from __future__ import annotations

from collections.abc import Iterable

from sentrail.model.baseline import START, AgentBaseline, Baselines
from sentrail.model.trace import Run, Step

NGRAM = 3  # the longest n-gram learned (transitions are bigrams, plus trigrams)


class BaselineLearner:
    """Accumulates counts run by run; ``result()`` may be called at any time."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentBaseline] = {}

    def add_run(self, run: Run) -> None:
        self.add_steps(run.agent_id, run.steps)

    def add_steps(self, agent_id: str, steps: Iterable[Step]) -> None:
        """Count one run of ``agent_id`` given as its steps (in order)."""
        base = self._agents.get(agent_id)
        if base is None:
            base = self._agents[agent_id] = AgentBaseline()
        tools, transitions, trigrams = base.tools, base.transitions, base.trigrams
        permissions = base.permissions
        before, prev = "", START
        calls = 0
        for step in steps:
            for perm in dict.fromkeys(step.permissions_used):
                permissions[perm] = permissions.get(perm, 0) + 1
            call = step.tool_call
            if call is None:
                continue
            tool = call.tool
            calls += 1
            tools[tool] = tools.get(tool, 0) + 1
            bigram = f"{prev} -> {tool}"
            transitions[bigram] = transitions.get(bigram, 0) + 1
            if before:
                trigram = f"{before} -> {bigram}"
                trigrams[trigram] = trigrams.get(trigram, 0) + 1
            before, prev = prev, tool
        base.runs += 1
        base.calls += calls

    def result(self) -> Baselines:
        """A copy of the counts so far, agents in name order."""
        return Baselines(
            ngram=NGRAM,
            agents={a: _copy(self._agents[a]) for a in sorted(self._agents)},
        )


def learn(runs: Iterable[Run]) -> Baselines:
    """Learn the baselines of every agent appearing in ``runs`` (consumed once, lazily)."""
    learner = BaselineLearner()
    for run in runs:
        learner.add_run(run)
    return learner.result()


def merge(*parts: Baselines) -> Baselines:
    """Add the counts of several baselines (e.g. a stored one and newly learned runs).

    Inputs are not modified. ``merge(learn(a), learn(b)) == learn([*a, *b])``.
    """
    agents: dict[str, AgentBaseline] = {}
    ngram = NGRAM
    for part in parts:
        ngram = max(ngram, part.ngram)
        for agent_id, src in part.agents.items():
            dst = agents.get(agent_id)
            if dst is None:
                agents[agent_id] = _copy(src)
                continue
            dst.runs += src.runs
            dst.calls += src.calls
            for mine, theirs in (
                (dst.tools, src.tools),
                (dst.transitions, src.transitions),
                (dst.trigrams, src.trigrams),
                (dst.permissions, src.permissions),
            ):
                for key, n in theirs.items():
                    mine[key] = mine.get(key, 0) + n
    return Baselines(ngram=ngram, agents={a: agents[a] for a in sorted(agents)})


def _copy(b: AgentBaseline) -> AgentBaseline:
    return AgentBaseline(
        runs=b.runs,
        calls=b.calls,
        tools=dict(sorted(b.tools.items())),
        transitions=dict(sorted(b.transitions.items())),
        trigrams=dict(sorted(b.trigrams.items())),
        permissions=dict(sorted(b.permissions.items())),
    )
