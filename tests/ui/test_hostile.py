"""Hostile traces in every view: nothing from a trace runs, links anywhere, or grows the
page without bound. Checked in a real Chromium with a ``window`` canary (every payload
sets ``window.__pwned``) and the page's CSP violation events (an injected inline script
or handler that reached the DOM would be refused and reported)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.ui.conftest import EXAMPLES, Site, sign_in, wait_until

BIDI = "\u202egnp.exe"
PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "<svg/onload=window.__pwned=1>",
    '<svg><script href="data:,window.__pwned=1"/></svg>',
    "javascript:window.__pwned=1",
    "</textarea></pre><iframe srcdoc='<script>parent.__pwned=1</script>'>",
    "{{7*7}}{% raw %}${7*7}",
    BIDI,
]
HOSTILE = " ".join(PAYLOADS)
BIG = "<script>window.__pwned=1</script>" + "A" * (10 * 1024 * 1024)


def hostile_trace() -> dict[str, Any]:
    doc = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    doc["run_id"] = "run-<script>window.__pwned=1</script>"
    doc["agent_id"] = "agent-<img src=x onerror=window.__pwned=1>"
    doc["trigger"] = HOSTILE
    for step in doc["steps"]:
        step["action"] = "javascript:window.__pwned=1"
        step["reasoning"] = HOSTILE
        step["permissions_used"] = [*step.get("permissions_used", []), "<b>perm</b>" + BIDI]
        if step.get("tool_call"):
            step["tool_call"]["tool"] = "db.delete_table<script>window.__pwned=1</script>"
            step["tool_call"]["parameters"]["note"] = HOSTILE
        if step.get("alternatives"):
            for alt in step["alternatives"]:
                alt["rejected_reason"] = HOSTILE
                alt["action"] = "<svg onload=window.__pwned=1>"
    doc["steps"][0]["result"] = {"status": "<script>x</script>", "data": BIG}
    return doc


def assert_inert(page: Any) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__csp") == []
    assert (
        page.evaluate("document.querySelectorAll('iframe, main script, object, embed').length") == 0
    )
    hrefs = page.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert all(h and h.startswith(("/ui/", "#", "?")) for h in hrefs), hrefs
    assert page.errors == []


def test_hostile_trace_content_renders_as_inert_bounded_text_in_every_view(
    page: Any, site: Site
) -> None:
    raw = json.dumps(hostile_trace()).encode()
    assert len(raw) > 10 * 1024 * 1024
    sign_in(page, site)
    page.goto("/ui/apps/app1/anomalies")  # open the live feed before the trace arrives
    site.ingest("app1", raw)
    page.wait_for_selector("#feed li.anomaly.fresh", timeout=30_000)
    assert_inert(page)
    trace_hash = hashlib.sha256(raw).hexdigest()
    base = f"/ui/apps/app1/runs/{trace_hash}"
    views = [
        "/ui/apps/app1/runs",
        "/ui/apps/app1/anomalies?state=all",
        "/ui/apps/app1/permissions?window=365d",
        "/ui/apps/app1/approvals",
        base,
        base + "?tab=decisions",
        base + "?tab=provenance",
        base + "?tab=replay",
    ]
    for url in views:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        assert len(page.content()) < 2 * 1024 * 1024, url  # a 10 MB result is cut
        assert_inert(page)
    page.goto(base)
    for step in page.locator("details.step > summary").all():
        step.click()  # every step expanded: reasoning, parameters, result, permissions
    page.locator("svg.timeline a.bar-link").first.focus()
    assert_inert(page)
    body = page.locator("main").inner_text()
    assert "<script>window.__pwned=1</script>" in body  # shown, as text
    assert "\u202e" not in body and "\\u202e" in body  # the override is made visible
    data = page.locator("details#step-0 pre.data").inner_text()
    assert 60_000 < len(data) < 70_000 and "chars)" in data
    page.goto(base + "?tab=decisions")
    rejected = page.locator(".option.rejected").first
    rejected.focus()
    assert "<svg/onload=window.__pwned=1>" in rejected.locator(".tip").inner_text()
    assert_inert(page)
    page.goto("/ui/settings")
    page.fill("#pinned-key", site.signer.verifier_key())
    page.click("#pin-form button[type=submit]")
    page.goto(base + "?tab=provenance")
    wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'ok'", 60)
    assert_inert(page)
    assert site.app.state.dashboard.csp_reports == 0  # nor did the browser report any
