"""The run page's replay audit tab in a real Chromium: the diff under a stored bundle, the
explanations and the execution graph; scoped to the session's app; hostile trace content
and a hostile policy bundle (rule id, description) render inert.

The store holds three generations: the example traces judged with the example bundle, a
hostile trace judged with a hostile bundle, and now the service judges new runs with the
changed bundle of tests/forensics (its current one). Each bundle is kept by hash, as
``serve --policy`` keeps it, and cited by the runs judged with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentrail.engine.engine import Engine
from sentrail.policy.compiled import Policy
from sentrail.policy.load import parse_policy
from sentrail.store.records import records
from tests.store.conftest import _sqlite
from tests.ui.conftest import EXAMPLES, Site, example_traces, serve, sign_in
from tests.ui.test_hostile import HOSTILE, assert_inert, hostile_trace
from tests.ui.test_views import no_script_ran

OLD = (EXAMPLES / "policy.yaml").read_bytes()
NEW = (Path(__file__).resolve().parents[1] / "forensics" / "replay-policy.yaml").read_bytes()
EVIL_RULE = "<script>window.__pwned=1</script>rule"
EVIL = OLD.replace(
    b"\nrules:\n",
    f"""
rules:
  - id: {json.dumps(EVIL_RULE)}
    description: {json.dumps(HOSTILE)}
    severity: warning
    tools: ["*"]
    condition: "true"
""".encode(),
    1,
)
RESTART = (EXAMPLES / "traces" / "triage-restart.json").read_bytes()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _generation(store: Any, body: bytes, traces: list[bytes]) -> None:
    engine = Engine(Policy(parse_policy(body, "bundle")))
    gen = serve(store, engine, policy_sha256=sha(body))
    s = next(gen)
    try:
        for t in traces:
            s.ingest("app1", t)
    finally:
        gen.close()


def replay_site(tmp_path: Path, hostile: bool = True) -> Iterator[Site]:
    """The three generations (see the module docstring; ``hostile``: with the second)."""
    backends = _sqlite(tmp_path)
    try:
        store = next(backends).open()
        with records(store, write=True) as rtx:
            for body in (OLD, NEW, EVIL):
                rtx.put_policy(sha(body), body, 1_700_000_000.0)
        _generation(store, OLD, [p.read_bytes() for p in example_traces()])
        if hostile:
            _generation(store, EVIL, [json.dumps(hostile_trace()).encode()])
        yield from serve(store, Engine(Policy(parse_policy(NEW, "new"))), sha(NEW))
    finally:
        backends.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from replay_site(tmp_path)


def test_the_replay_tab_shows_the_diff_under_a_chosen_stored_bundle(page: Any, site: Site) -> None:
    sign_in(page, site)
    page.goto(f"/ui/apps/app1/runs/{sha(RESTART)}")
    page.click("nav.tabs a:has-text('Replay audit')")
    page.wait_for_url("**tab=replay**")
    summary = page.locator("#replay-summary").inner_text()
    assert "No change" in summary  # its own bundle reproduces the stored judgement
    assert page.locator("#replay-steps tr.row-changed").count() == 0
    assert "unchanged" in page.locator("#replay-steps").inner_text()
    options = page.locator("#policy option").all_inner_texts()
    assert any(sha(NEW)[:12] in o and "current" in o for o in options), options
    assert any(sha(OLD)[:12] in o and "run(s) judged" in o for o in options), options
    no_script_ran(page)

    page.select_option("#policy", sha(NEW))
    page.click("#replay-form button[type=submit]")
    page.wait_for_url(f"**policy={sha(NEW)}**")
    assert "Changed" in page.locator("#replay-summary").inner_text()
    restart = page.locator("#replay-steps tr.row-changed", has_text="service.restart")
    text = restart.inner_text()
    assert "changed" in text and "deny" in text and "decision changed" in text
    assert "policy.rule.no-prod-restart" in restart.locator(".fref-added").inner_text()
    why = page.locator("#replay-explanations").inner_text()
    assert "no-prod-restart" in why and "flagged" in why
    graph = page.locator("#replay-graph")
    assert graph.locator("li.node-step").count() > 0
    assert page.locator("#policy").input_value() == sha(NEW)
    no_script_ran(page)

    link = graph.locator("a.value-link").first
    link.click()
    page.wait_for_url("**/ui/apps/app1/graph?**")
    assert page.locator("#value-runs tbody tr").count() >= 1
    page.locator("#value-runs tbody a[href*='tab=replay']").first.click()
    page.wait_for_url("**tab=replay**")
    no_script_ran(page)


def test_a_bundle_the_app_never_used_or_a_bad_hash_is_refused(page: Any, site: Site) -> None:
    sign_in(page, site)
    base = f"/ui/apps/app1/runs/{sha(RESTART)}?tab=replay&policy="
    assert page.goto(base + sha(b"never stored")).status == 404
    assert page.goto(base + "not-a-hash").status == 400


@pytest.mark.parametrize("key", ["other_app", "other_tenant"])
def test_another_apps_session_cannot_open_the_replay_tab(page: Any, site: Site, key: str) -> None:
    page.goto("/ui/")
    page.fill("#api_key", site.keys[key])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    url = f"/ui/apps/app1/runs/{sha(RESTART)}?tab=replay&policy={sha(NEW)}"
    response = page.goto(url)
    assert response is not None and response.status == 404
    assert "service.restart" not in page.content()
    if key == "other_tenant":  # its own app1 holds no such run
        assert page.goto("/ui/apps/app1/graph?value=orders-prod-primary.corp.example.com")
        assert page.locator("#value-runs").count() == 0


def test_hostile_trace_and_hostile_bundle_render_inert_in_the_replay_tab(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    hostile = sha(json.dumps(hostile_trace()).encode())
    views = [
        f"/ui/apps/app1/runs/{hostile}?tab=replay",  # its own: the hostile bundle
        f"/ui/apps/app1/runs/{hostile}?tab=replay&policy={sha(OLD)}",  # hostile findings gone
        f"/ui/apps/app1/runs/{sha(RESTART)}?tab=replay&policy={sha(EVIL)}",  # ... added
    ]
    for url in views:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        assert len(page.content()) < 2 * 1024 * 1024, url
        for d in page.locator("#replay-section details").all():
            d.evaluate("d => d.open = true")
        assert_inert(page)
    body = page.locator("main").inner_text()
    assert "policy.rule." + EVIL_RULE in body  # shown, as text
    assert "<svg/onload=window.__pwned=1>" in page.locator("#replay-steps").inner_text()
    page.goto(views[1])
    assert "policy.rule." + EVIL_RULE in page.locator("#replay-steps .fref-gone").first.inner_text()
    assert_inert(page)
    assert site.app.state.dashboard.csp_reports == 0
