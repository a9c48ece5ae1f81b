"""A real ``sentrail serve`` app (uvicorn on loopback) over a store holding the example
traces, and a real Chromium driven by Playwright.

Chromium is Debian's ``/usr/bin/chromium`` (browsers cannot be downloaded here; ``.ci/run``
installs the package). When it is missing these tests FAIL: they are never skipped.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher

from sentrail.engine.engine import Engine
from sentrail.evidence.note import Signer
from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy
from sentrail.service.app import ServiceConfig, create_app
from sentrail.service.auth import create_key
from sentrail.store.core import LogStore
from tests.store.conftest import SIGNER, _postgres, _sqlite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ALL = "ingest,read,triage,approve,contain,decide"


def example_traces() -> list[Path]:
    """Every example trace but the deliberately truncated one."""
    return [p for p in sorted((EXAMPLES / "traces").glob("*.json")) if p.name != "truncated.json"]


@dataclass
class Site:
    """A running service with the dashboard, its store, and keys by name."""

    url: str
    store: LogStore
    signer: Signer
    app: Any
    keys: dict[str, str] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        """A client of the running server (not a TestClient: that would run the app's
        lifespan a second time and stop its checkpoint timer on exit)."""
        return httpx.Client(base_url=self.url, timeout=30)

    def ingest(self, app_id: str, body: bytes, key: str = "all", kind: str = "traces") -> Any:
        with self.api() as c:
            r = c.post(
                f"/v1/apps/{app_id}/{kind}",
                content=body,
                headers={"Authorization": f"Bearer {self.keys[key]}"},
            )
        assert r.status_code in (200, 201), r.text
        return r.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    store: LogStore, engine: Engine | None = None, policy_sha256: str | None = None
) -> Iterator[Site]:
    """``policy_sha256``: the bundle the runs it judges cite (as ``serve --policy`` does)."""
    app = create_app(
        store,
        engine or Engine(),
        SIGNER,
        ServiceConfig(checkpoint_interval_s=0.2),
        policy_sha256=policy_sha256,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    site = Site(f"http://127.0.0.1:{port}", store, SIGNER, app)
    for name, app_id, scopes in (
        ("all", "app1", ALL),
        ("read", "app1", "read"),
        ("other_app", "app2", ALL),
        ("every_app", "*", ALL),
    ):
        site.keys[name], _ = create_key(store, "tenant-a", app_id, scopes, hasher=CHEAP)
    site.keys["other_tenant"], _ = create_key(store, "tenant-b", "app1", ALL, hasher=CHEAP)
    try:
        yield site
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def example_site(backend_name: str, tmp_path: Path) -> Iterator[Site]:
    """The example traces stored in tenant-a/app1, judged by the example policy."""
    backends = _sqlite(tmp_path) if backend_name == "sqlite" else _postgres()
    try:
        store = next(backends).open()
        engine = Engine(policy=Policy(load_policy(EXAMPLES / "policy.yaml")))
        for s in serve(store, engine):
            for p in example_traces():
                s.ingest("app1", p.read_bytes())
            yield s
    finally:
        backends.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from example_site("sqlite", tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def any_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The same, on both store backends (PostgreSQL fails, never skips, when down)."""
    yield from example_site(request.param, tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. (Not per session: Playwright's sync API keeps an
    event loop running in this thread while it is open, which would break later tests
    that call ``asyncio.run``.)"""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


CANARY = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
    e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));
"""


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a CSP-violation collector, on the test's
    site (``any_site`` when the test uses it, else ``site``)."""
    name = "any_site" if "any_site" in request.fixturenames else "site"
    site: Site = request.getfixturevalue(name)
    context = browser.new_context(base_url=site.url, viewport={"width": 1366, "height": 900})
    context.add_init_script(CANARY)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()


def sign_in(page: Any, site: Site, key: str = "all") -> None:
    page.goto("/ui/")
    page.fill("#api_key", site.keys[key])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/apps/**")


def wait_until(page: Any, expression: str, timeout_s: float = 20.0) -> None:
    """Poll ``expression`` until it is truthy. (Playwright's ``wait_for_function`` evaluates
    its predicate with ``eval``, which the dashboard's CSP rightly refuses; ``evaluate``
    goes through the DevTools protocol instead.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s}s: {expression}"
        page.wait_for_timeout(100)
