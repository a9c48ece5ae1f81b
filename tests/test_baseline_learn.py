"""Learning baselines: counts only, streaming, and merge adds them up."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from sentrail.engine.baseline_learn import BaselineLearner, learn, merge
from sentrail.model.baseline import START, Baselines
from sentrail.model.trace import Run, Step, ToolCall

TOOLS = ["a.get", "b.set", "c.delete", "d"]


def make_run(agent: str, tools: list[str | None], n: int = 0) -> Run:
    return Run(
        run_id=f"run-{agent}-{n}",
        agent_id=agent,
        steps=[
            Step(
                step_index=i,
                tool_call=None if t is None else ToolCall(tool=t),
                permissions_used=[f"{t}:perm"] if t else [],
            )
            for i, t in enumerate(tools)
        ],
    )


def test_counts_of_a_small_history() -> None:
    b = learn([make_run("x", ["a.get", "b.set", None, "a.get"]), make_run("x", ["a.get"])])
    x = b.agents["x"]
    assert (x.runs, x.calls) == (2, 4)
    assert x.tools == {"a.get": 3, "b.set": 1}
    assert x.transitions == {"^ -> a.get": 2, "a.get -> b.set": 1, "b.set -> a.get": 1}
    assert x.trigrams == {"^ -> a.get -> b.set": 1, "a.get -> b.set -> a.get": 1}
    assert x.permissions == {"a.get:perm": 3, "b.set:perm": 1}


def test_learn_consumes_a_generator_once() -> None:
    consumed = []

    def runs() -> Iterator[Run]:
        for n in range(3):
            consumed.append(n)
            yield make_run("x", ["a.get"], n)

    assert learn(runs()).agents["x"].runs == 3
    assert consumed == [0, 1, 2]


def test_empty_history_and_empty_runs() -> None:
    assert learn([]).agents == {}
    b = learn([make_run("x", []), make_run("x", [None])])
    assert (b.agents["x"].runs, b.agents["x"].calls, b.agents["x"].transitions) == (2, 0, {})


def test_result_round_trips_through_json() -> None:
    b = learn([make_run("x", ["a.get", "b.set"]), make_run("y", ["d"])])
    again = msgspec.json.decode(msgspec.json.encode(b), type=Baselines)
    assert again == b
    assert again.get("y") is not None and again.get("nobody") is None


def test_learner_result_is_a_snapshot() -> None:
    learner = BaselineLearner()
    learner.add_run(make_run("x", ["a.get"]))
    first = learner.result()
    learner.add_run(make_run("x", ["a.get"]))
    assert first.agents["x"].runs == 1 and learner.result().agents["x"].runs == 2


runs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["agent-a", "agent-b"]),
        st.lists(st.one_of(st.none(), st.sampled_from(TOOLS)), max_size=10),
    ),
    max_size=12,
)


@given(runs_strategy)
def test_counts_are_consistent(spec: list[tuple[str, list[str | None]]]) -> None:
    runs = [make_run(agent, tools, n) for n, (agent, tools) in enumerate(spec)]
    b = learn(runs)
    total_calls = sum(1 for _, tools in spec for t in tools if t is not None)
    assert sum(a.calls for a in b.agents.values()) == total_calls
    assert sum(a.runs for a in b.agents.values()) == len(spec)
    for agent_id, a in b.agents.items():
        mine = [[t for t in tools if t] for ag, tools in spec if ag == agent_id]
        with_calls = sum(1 for calls in mine if calls)
        assert sum(a.transitions.values()) == a.calls == sum(a.tools.values())
        assert sum(a.trigrams.values()) == a.calls - with_calls
        starts = sum(n for k, n in a.transitions.items() if k.startswith(f"{START} -> "))
        assert starts == with_calls
        # every tool that appears in a transition or trigram was counted as a tool
        for key in [*a.transitions, *a.trigrams]:
            assert all(t == START or t in a.tools for t in key.split(" -> "))


@given(runs_strategy, runs_strategy)
def test_merge_equals_learning_everything(
    left: list[tuple[str, list[str | None]]], right: list[tuple[str, list[str | None]]]
) -> None:
    a = [make_run(agent, tools, n) for n, (agent, tools) in enumerate(left)]
    b = [make_run(agent, tools, n) for n, (agent, tools) in enumerate(right)]
    la, lb = learn(a), learn(b)
    before = msgspec.json.encode(la)
    assert merge(la, lb) == learn([*a, *b])
    assert msgspec.json.encode(la) == before, "merge must not modify its inputs"
    assert merge(la) == la
