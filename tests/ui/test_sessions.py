"""Sign-in, sessions, CSRF, same-origin checks, scoping and headers of the dashboard (no
browser needed: these are HTTP properties)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentrail.engine.engine import Engine
from sentrail.service.app import ServiceConfig, create_app
from sentrail.service.auth import create_key
from sentrail.store.records import FindingFilter, RunFilter, records
from sentrail.ui.sessions import COOKIE, SessionBook
from sentrail.ui.web import safe_next
from tests.store.conftest import SIGNER, _sqlite
from tests.ui.conftest import CHEAP, EXAMPLES

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

HOST = "http://testserver"
SAME = {"Origin": HOST}


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = next(_sqlite(tmp_path)).open()
    app = create_app(store, Engine(), SIGNER, ServiceConfig())
    keys = {}
    for name, app_id, scopes in (
        ("all", "app1", "ingest,read,triage,approve"),
        ("read", "app1", "read"),
        ("ingest", "app1", "ingest"),
        ("app2", "app2", "read,triage"),
        ("app2_contain", "app2", "read,contain"),
        ("other_tenant", "app1", "read,triage"),
    ):
        tenant = "tenant-b" if name == "other_tenant" else "tenant-a"
        keys[name], _ = create_key(store, tenant, app_id, scopes, hasher=CHEAP)
    with TestClient(app, base_url=HOST) as c:
        r = c.post(
            "/v1/apps/app1/traces",
            content=(EXAMPLES / "traces" / "prod-delete.json").read_bytes(),
            headers={"Authorization": f"Bearer {keys['all']}"},
        )
        assert r.status_code == 201
        c.app_store = store  # type: ignore[attr-defined]
        yield c, keys
    store.close()


def login(c: TestClient, key: str) -> str:
    r = c.post("/ui/login", data={"api_key": key}, headers=SAME, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure
    return csrf_of(c)


def csrf_of(c: TestClient, url: str = "/ui/apps/app1/anomalies") -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get(url).text)
    assert m
    return m.group(1)


def test_a_session_token_is_refused_when_tampered_expired_or_logged_out() -> None:
    clock = Clock()
    book = SessionBook(ttl_s=60, clock=clock)
    token = book.issue("k1", "t", "a", ("read",))
    session = book.check(token)
    assert session is not None and session.tenant_id == "t"
    body, mac = token.split(".")
    assert book.check(body + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")) is None
    forged = token.replace(body, body[:-4] + "AAAA")
    assert book.check(forged) is None
    assert SessionBook().check(token) is None  # another process key (a restart)
    clock.t += 61
    assert book.check(token) is None
    clock.t -= 61
    book.revoke(session)
    assert book.check(token) is None


@given(st.text(max_size=300))
def test_no_string_is_accepted_as_a_session_or_csrf_token_unless_issued(text: str) -> None:
    book = SessionBook()
    assert book.check(text) is None
    token = book.issue("k1", "t", "a", ("read",))
    session = book.check(token)
    assert session is not None
    assert book.csrf_ok(session, text) is (text == book.csrf_token(session))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ui/apps/app1/runs", "/ui/apps/app1/runs"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/v1/apps/app1/traces", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_sign_in_only_returns_to_a_dashboard_path(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_every_page_carries_a_strict_content_security_policy(client: tuple) -> None:
    c, keys = client
    login(c, keys["all"])
    for url in ("/ui/login", "/ui/apps/app1/runs", "/ui/static/app.js", "/ui/nope"):
        h = c.get(url).headers
        csp = h["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert h["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in c.get("/healthz").headers  # the API is unchanged


def test_csp_violation_reports_are_accepted_and_counted(client: tuple) -> None:
    c, _ = client
    before = c.app.state.dashboard.csp_reports
    r = c.post("/ui/csp-report", content=b'{"csp-report": {"violated-directive": "script-src"}}')
    assert r.status_code == 204
    assert c.app.state.dashboard.csp_reports == before + 1


def test_a_bad_key_or_a_key_without_read_is_refused_at_sign_in(client: tuple) -> None:
    c, keys = client
    r = c.post("/ui/login", data={"api_key": "sk_0000000000000000_" + "A" * 43}, headers=SAME)
    assert (
        r.status_code == 401
        and "not valid" in r.text
        and COOKIE not in r.headers.get("set-cookie", "")
    )
    r = c.post("/ui/login", data={"api_key": keys["ingest"]}, headers=SAME)
    assert r.status_code == 401 and "read" in r.text


def test_failed_sign_ins_are_limited_like_failed_api_key_checks(client: tuple) -> None:
    """The sign-in form is a key check like any other: bounded, off the event loop, and a
    client that keeps failing is told to wait (429 + Retry-After) before any hashing."""
    c, keys = client
    wrong = "sk_0000000000000000_" + "A" * 43
    statuses = [c.post("/ui/login", data={"api_key": wrong}, headers=SAME) for _ in range(12)]
    assert statuses[0].status_code == 401
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[-1].headers["Retry-After"].isdigit()
    assert "Too many failed sign-ins" in limited[-1].text
    # ... and only that client: someone else signs in meanwhile.
    with TestClient(c.app, base_url=HOST, client=("192.0.2.7", 50000)) as other:
        r = other.post("/ui/login", data={"api_key": keys["read"]}, headers=SAME)
        assert r.status_code == 200 and COOKIE in str(other.cookies.keys()), r.status_code


def test_a_cross_origin_form_is_refused_even_to_sign_in(client: tuple) -> None:
    c, keys = client
    for headers in ({"Origin": "http://evil.example"}, {}, {"Origin": "null"}):
        r = c.post("/ui/login", data={"api_key": keys["all"]}, headers=headers)
        assert r.status_code == 403


def test_a_state_change_without_the_sessions_csrf_token_is_refused(client: tuple) -> None:
    c, keys = client
    csrf = login(c, keys["all"])
    store = c.app_store  # type: ignore[attr-defined]
    with records(store) as rtx:
        (finding, *_) = rtx.list_findings("tenant-a", "app1", _all(), 10)
    url = f"/ui/apps/app1/findings/{finding.finding_id}/triage"
    form = {"resolved": "true", "comment": "looked at it"}
    assert c.post(url, data=form, headers=SAME).status_code == 403
    assert c.post(url, data={**form, "csrf": csrf + "x"}, headers=SAME).status_code == 403
    assert (
        c.post(url, data={**form, "csrf": csrf}, headers={"Origin": "http://x"}).status_code == 403
    )
    r = c.post(url, data={**form, "csrf": csrf}, headers=SAME, follow_redirects=False)
    assert r.status_code == 303
    with records(store) as rtx:
        assert rtx.get_finding("tenant-a", "app1", finding.finding_id).resolved  # type: ignore[union-attr]


def _all() -> FindingFilter:
    return FindingFilter()


def test_sign_out_and_key_revocation_end_the_session(client: tuple) -> None:
    c, keys = client
    csrf = login(c, keys["all"])
    token = c.cookies.get(COOKIE)
    assert c.get("/ui/apps/app1/runs").status_code == 200
    r = c.post("/ui/logout", data={"csrf": csrf}, headers=SAME, follow_redirects=False)
    assert r.status_code == 303
    c.cookies.set(COOKIE, token, path="/ui")  # replaying the old cookie
    r = c.get("/ui/apps/app1/runs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    c.cookies.clear()
    login(c, keys["read"])
    key_id = keys["read"].split("_")[1]
    with records(c.app_store, write=True) as rtx:  # type: ignore[attr-defined]
        rtx.revoke_key(key_id, 1.0)
    assert c.get("/ui/apps/app1/runs", follow_redirects=False).status_code == 303


def test_a_key_sees_only_its_tenant_and_app_and_acts_only_with_its_scopes(
    client: tuple,
) -> None:
    c, keys = client
    store = c.app_store  # type: ignore[attr-defined]
    with records(store) as rtx:
        (finding, *_) = rtx.list_findings("tenant-a", "app1", _all(), 10)
        run = rtx.list_runs("tenant-a", "app1", RunFilter(), 1)[0]
    for who in ("app2", "other_tenant"):
        c.cookies.clear()
        csrf = login(c, keys[who]) if who == "other_tenant" else login_any(c, keys[who])
        if who == "app2":
            assert c.get("/ui/apps/app1/runs").status_code == 404
            assert c.get("/ui/apps/app2%20x/runs").status_code == 404
            assert c.get(f"/ui/apps/app1/runs/{run.trace_hash}").status_code == 404
        else:  # same app name, another tenant: nothing of tenant-a is there
            page = c.get("/ui/apps/app1/runs").text
            assert run.run_id not in page
            assert c.get(f"/ui/apps/app1/runs/{run.trace_hash}").status_code == 404
            assert c.get(f"/ui/apps/app1/runs/{run.trace_hash}/payloads.bin").status_code == 404
        r = c.post(
            f"/ui/apps/app1/findings/{finding.finding_id}/triage",
            data={"resolved": "true", "comment": "not mine", "csrf": csrf},
            headers=SAME,
        )
        assert r.status_code == 404
    c.cookies.clear()
    csrf = login(c, keys["read"])
    assert 'name="comment"' not in c.get("/ui/apps/app1/anomalies").text  # no triage form
    r = c.post(
        f"/ui/apps/app1/findings/{finding.finding_id}/triage",
        data={"resolved": "true", "comment": "no scope", "csrf": csrf},
        headers=SAME,
    )
    assert r.status_code == 403
    with records(store) as rtx:
        assert not rtx.get_finding("tenant-a", "app1", finding.finding_id).resolved  # type: ignore[union-attr]


def login_any(c: TestClient, key: str) -> str:
    """Sign in with a key of another app: its own app's page carries the CSRF token."""
    r = c.post("/ui/login", data={"api_key": key}, headers=SAME, follow_redirects=False)
    assert r.status_code == 303
    return csrf_of(c, "/ui/apps/app2/anomalies")


def test_containment_needs_the_scope_and_a_run_of_the_keys_own_app(client: tuple) -> None:
    c, keys = client
    store = c.app_store  # type: ignore[attr-defined]
    with records(store) as rtx:
        run = rtx.list_runs("tenant-a", "app1", RunFilter(), 1)[0]
    form = {"action": "freeze_run", "run_id": run.run_id, "reason": "x"}
    csrf = login(c, keys["all"])  # read, triage, approve: no contain
    r = c.post("/ui/apps/app1/containment", data={**form, "csrf": csrf}, headers=SAME)
    assert r.status_code == 403
    c.cookies.clear()
    csrf = login_any(c, keys["app2_contain"])
    r = c.post("/ui/apps/app2/containment", data={**form, "csrf": csrf}, headers=SAME)
    assert r.status_code == 404  # app1's run, named through app2
    with records(store) as rtx:
        assert rtx.containment_log("tenant-a") == []
