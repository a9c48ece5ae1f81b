"""``sentrail serve`` and ``sentrail apikey create|list|revoke`` (the ``server`` extra)."""

from __future__ import annotations

import datetime as dt
import errno
import socket
import time
from typing import Annotated

import typer

from sentrail.cli.common import EXIT_OK, echo_table, fail
from sentrail.cli.defaults import shown_url, store_url
from sentrail.cli.store import Database, _keys, _open
from sentrail.cli.store_access import keep_policy
from sentrail.errors import SentrailError, UsageError
from sentrail.report.escape import safe_text

apikey_app = typer.Typer(help="API keys of the HTTP service.", no_args_is_help=True)


def _server_extra() -> None:
    try:
        import argon2  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        fail("the service needs the server extra: pip install 'sentrail[server]'")


def serve(
    database: Database = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind")] = 8080,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Policy bundle applied on ingest")
    ] = None,
    baselines: Annotated[
        str | None, typer.Option("--baselines", help="Baselines file from `baseline learn`")
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body accepted (MiB)")
    ] = 16.0,
    checkpoint_interval: Annotated[
        float, typer.Option("--checkpoint-interval", help="Seconds between checkpoints")
    ] = 1.0,
    alerts: Annotated[
        str | None, typer.Option("--alerts", help="Alert policy (docs/alerts.md)")
    ] = None,
) -> None:
    """Run the HTTP service (OpenAPI at /openapi.json, docs at /docs)."""
    _server_extra()
    import uvicorn

    from sentrail.engine.config import EngineConfig
    from sentrail.service.alerting import open_router
    from sentrail.service.app import ServiceConfig, create_app

    try:
        signer = _keys().ensure()
        engine = EngineConfig(policy_path=policy, baseline_path=baselines).build()
        config = ServiceConfig(
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            checkpoint_interval_s=checkpoint_interval,
        )
        store = _open(database, signer)
        keep_policy(store, engine.policy.sha256, policy)  # runs cite it by hash
        router = open_router(alerts) if alerts is not None else None
        app = create_app(
            store, engine, signer, config, policy_sha256=engine.policy.sha256, alerts=router
        )
    except (SentrailError, ValueError, OSError) as exc:
        fail(str(exc))
    try:
        sock = _listen(host, port)
    except SentrailError as exc:
        store.close()
        fail(str(exc))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"sentrail serving on http://{safe_text(shown)}:{port} (store "
        f"{safe_text(shown_url(store_url(database)))}, log key {signer.name})"
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="info", server_header=False)
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()


def _listen(host: str, port: int) -> socket.socket:
    """The bound listening socket, before anything says it is serving: a busy port is
    one clear error (exit 2), not a "serving on" line followed by a bind failure."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is already in use (another process listens there; --port)"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges; --port)"
        else:
            reason = exc.strerror or str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None
    except OverflowError:  # a port outside 0..65535
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: not a port number") from None
    return sock


@apikey_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id")],
    app_id: Annotated[str, typer.Option("--app", help="App id, or '*' for every app")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: ingest, read, triage, metrics, decide, approve, contain",
        ),
    ] = "ingest,read",
    database: Database = None,
) -> None:
    """Create a key. It is printed once and stored only as an argon2id hash."""
    _server_extra()
    from sentrail.service.auth import create_key

    store = _open(database)
    try:
        key, row = create_key(store, tenant, app_id, scopes)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(key)
    typer.echo(
        f"key id {row.key_id}: tenant {safe_text(row.tenant_id)}, app {safe_text(row.app_id)}, "
        f"scopes {','.join(row.scopes)}. Store it now: it is not shown again.",
        err=True,
    )


@apikey_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant")] = None,
    database: Database = None,
) -> None:
    """List keys (ids and metadata only; secrets are never stored)."""
    from sentrail.store.records import records

    store = _open(database)
    try:
        with records(store) as rtx:
            rows = rtx.list_keys(tenant)
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    table = [
        [
            r.key_id,
            safe_text(r.tenant_id),
            safe_text(r.app_id),
            ",".join(r.scopes),
            dt.datetime.fromtimestamp(r.created_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "revoked" if r.revoked_at is not None else "active",
        ]
        for r in rows
    ]
    headers = ["KEY ID", "TENANT", "APP", "SCOPES", "CREATED", "STATE"]
    echo_table(headers, table, "no API keys (create one: sentrail apikey create)")
    raise typer.Exit(EXIT_OK)


@apikey_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (the 16 hex after sk_)")],
    database: Database = None,
) -> None:
    """Revoke a key (running services stop accepting it within 5 seconds)."""
    from sentrail.store.records import records

    store = _open(database)
    try:
        with records(store, write=True) as rtx:
            done = rtx.revoke_key(key_id, time.time())
    except SentrailError as exc:
        fail(str(exc))
    finally:
        store.close()
    if not done:
        fail(f"no active key {key_id!r}")
    typer.echo(f"revoked {safe_text(key_id)}")
