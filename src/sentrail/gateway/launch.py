"""From command-line options to a running gate: policy, signing key, decision log, run id."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import msgspec

from sentrail.enforce.pdp import DecisionPoint
from sentrail.engine.engine import Engine
from sentrail.errors import UsageError
from sentrail.evidence.keys import KeyStore, default_home, default_key_dir
from sentrail.evidence.note import Signer
from sentrail.gateway.gate import DecisionLog, DecisionPointLike, Gate
from sentrail.gateway.names import agent_from_command, check_name
from sentrail.policy.bundle import AgentProfile, PolicyBundle
from sentrail.policy.compiled import BUILTIN_RULES, Policy
from sentrail.policy.load import LoadedBundle, load_policy


class ProxyOptions(msgspec.Struct, frozen=True):
    command: list[str]
    policy: str | None = None
    agent_id: str | None = None
    tenant: str = "default"
    run_id: str | None = None
    timeout: float = 1.0
    monitor: bool = False
    decisions: str | None = None
    database: str | None = None  # shared approvals, containment and the tamper-evident log
    home: str | None = None  # keys and decision logs (default: $SENTRAIL_HOME)


def new_run_id() -> str:
    return f"mcp-{secrets.token_hex(8)}"


def monitor_only(loaded: LoadedBundle | None) -> LoadedBundle:
    """The bundle with every profile (and the default) in monitor mode."""
    if loaded is None:
        bundle = PolicyBundle(name="built-in defaults", rules=list(BUILTIN_RULES))
        loaded = LoadedBundle(bundle=bundle, sha256="", path=None)
    b = loaded.bundle

    def watch(p: AgentProfile) -> AgentProfile:
        return msgspec.structs.replace(
            p, enforcement=msgspec.structs.replace(p.enforcement, mode="monitor")
        )

    bundle = msgspec.structs.replace(
        b,
        agents=[watch(p) for p in b.agents],
        default_profile=watch(b.default_profile or AgentProfile(id="*")),
    )
    return msgspec.structs.replace(loaded, bundle=bundle)


def build_point(
    policy: str | None, signer: Signer, *, monitor: bool, database: str | None = None
) -> DecisionPoint:
    loaded = load_policy(policy) if policy else None
    if monitor:
        loaded = monitor_only(loaded)
    engine = Engine(Policy(loaded))
    if database is None:
        return DecisionPoint(engine, signer)
    from sentrail.enforce.persist import StoreApprovals, StoreContainment, store_recorder
    from sentrail.store import open_store

    store = open_store(database, signer)
    store.migrate()
    store.sign_automatically()  # its decisions are covered by a checkpoint within a second
    return DecisionPoint(
        engine,
        signer,
        recorder=store_recorder(store),
        containment=StoreContainment(store),
        approvals=StoreApprovals(store),
    )


def _home(options: ProxyOptions) -> Path:
    return Path(options.home) if options.home else default_home()


def default_signer(home: Path | None = None) -> Signer:
    return KeyStore(default_key_dir(home or default_home())).ensure()


def decisions_path(options: ProxyOptions, run_id: str) -> Path:
    if options.decisions:
        return Path(options.decisions)
    return _home(options) / "decisions" / f"{run_id}.ndjson"


def open_gate(
    options: ProxyOptions,
    *,
    point: DecisionPointLike | None = None,
    signer: Signer | None = None,
    notice: Callable[[str], None] | None = None,
) -> tuple[Gate, DecisionLog]:
    """The gate for ``options`` (``point`` and ``signer`` replace the defaults, for tests)."""
    if not options.command:
        raise UsageError("no MCP server command given (put it after --)")
    if not 0 < options.timeout <= 600:
        raise UsageError("--timeout must be more than 0 and at most 600 seconds")
    tenant = check_name(options.tenant, "tenant")
    agent = check_name(options.agent_id or agent_from_command(options.command), "agent id")
    run_id = check_name(options.run_id or new_run_id(), "run id")
    signer = signer or default_signer(_home(options))
    if point is None:
        point = build_point(
            options.policy, signer, monitor=options.monitor, database=options.database
        )
    log = DecisionLog(decisions_path(options, run_id))
    gate = Gate(
        point,
        log,
        signer,
        tenant=tenant,
        agent_id=agent,
        run_id=run_id,
        timeout=options.timeout,
        notice=notice or (lambda s: None),
    )
    return gate, log
