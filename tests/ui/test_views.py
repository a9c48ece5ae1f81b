"""Every dashboard view in a real Chromium, over the stored example traces: loaded,
clicked through and checked (tests/ui/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sentrail.service.auth import actor_label
from sentrail.store.records import records
from tests.ui.conftest import EXAMPLES, Site, sign_in, wait_until

PROD_DELETE = hashlib.sha256((EXAMPLES / "traces" / "prod-delete.json").read_bytes()).hexdigest()


def run_url(trace_hash: str = PROD_DELETE, tab: str = "") -> str:
    return f"/ui/apps/app1/runs/{trace_hash}" + (f"?tab={tab}" if tab else "")


def no_script_ran(page: Any) -> None:
    assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
    assert page.errors == []


def test_the_fleet_overview_counts_filters_pages_and_links_every_stored_run(
    page: Any, any_site: Site
) -> None:
    sign_in(page, any_site)
    assert page.locator(".stat .num").first.inner_text() == "14"
    assert page.locator("table.runs tbody tr").count() == 14
    assert page.locator("svg.chart rect").count() > 0  # findings per day
    page.locator(".stat a", has_text="unauthorized").click()
    page.wait_for_url("**verdict=unauthorized**")
    verdicts = page.locator("table.runs tbody td:nth-child(4)").all_inner_texts()
    assert verdicts and all("unauthorized" in v for v in verdicts)
    page.select_option("select[name=agent]", "dba-assistant-prod")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**agent=dba-assistant-prod**")
    assert page.locator("table.runs tbody tr").count() == 1
    page.click("table.runs tbody a.mono")
    page.wait_for_url(f"**/runs/{PROD_DELETE}")
    assert "run-e4b70d19-8c2f" in page.locator("h1").inner_text()
    no_script_ran(page)


def test_the_run_list_pages_by_keyset_with_a_stable_next_link(page: Any, site: Site) -> None:
    body = json.loads((EXAMPLES / "traces" / "clean-support-lookup.json").read_bytes())
    for i in range(55):
        body["run_id"] = f"run-page-{i:03d}"
        body["started_at"] = f"2026-02-01T00:{i:02d}:00Z"
        site.ingest("app1", json.dumps(body).encode())
    sign_in(page, site)
    first = page.locator("table.runs tbody a.mono").all_inner_texts()
    assert len(first) == 50
    page.click("a[rel=next]")
    page.wait_for_url("**cursor=**")
    second = page.locator("table.runs tbody a.mono").all_inner_texts()
    assert len(second) == 69 - 50 and not set(first) & set(second)


def test_a_timeline_step_opens_by_click_and_by_keyboard_with_its_details(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    page.goto(run_url())
    bars = page.locator("svg.timeline a.bar-link")
    assert bars.count() == 5
    assert page.locator("svg.timeline text.marker").count() >= 2  # finding markers
    assert "critical" in page.locator("svg.timeline a.bar-link").nth(2).inner_html()
    bars.nth(2).click()
    # The page opens the step on ``hashchange``, an event dispatched after the hash is set.
    wait_until(page, "document.getElementById('step-2').open")
    step = page.locator("details#step-2")
    text = step.inner_text().lower()
    assert "reasoning" in text and "tool call parameters" in text and "db:ddl:drop" in text
    assert "result" in text and "findings" in text
    bars.nth(0).focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    wait_until(page, "location.hash === '#step-3'")
    wait_until(page, "document.getElementById('step-3').open")
    page.locator("details#step-4 > summary").focus()
    page.keyboard.press("Enter")
    assert page.locator("details#step-4").get_attribute("open") is not None
    no_script_ran(page)


def test_focus_is_visible_on_links_and_controls(page: Any, site: Site) -> None:
    sign_in(page, site)
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")


def test_the_decision_tree_marks_the_chosen_branch_and_reveals_each_rejection_reason(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    page.goto(run_url(tab="decisions"))
    chosen = page.locator(".option.chosen")
    assert chosen.count() == 1 and "chosen" in chosen.inner_text()
    rejected = page.locator(".option.rejected").first
    tip = rejected.locator(".tip")
    assert "rejected" in rejected.inner_text()
    assert not tip.is_visible()
    rejected.hover()
    assert tip.is_visible() and tip.inner_text().strip()
    page.mouse.move(0, 0)
    assert not tip.is_visible()
    rejected.focus()  # keyboard users get the reason too
    assert tip.is_visible()
    described = rejected.get_attribute("aria-describedby")
    assert described and page.locator(f"#{described}").inner_text() == tip.inner_text()


def test_the_heatmap_marks_unused_grants_and_repeated_escalations_not_by_colour_alone(
    page: Any, site: Site
) -> None:
    body = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    body["permissions_summary"]["granted"] = ["db:read", "db:write"]  # drop is an escalation
    for i in range(2):
        body["run_id"] = f"run-again-{i}"
        body["agent_id"] = "schema-tidy-bot"  # no policy profile: the trace's grant rules
        site.ingest("app1", json.dumps(body).encode())
    sign_in(page, site)
    page.goto("/ui/apps/app1/permissions?window=365d")
    row = page.locator("table.heatmap tbody tr", has_text="schema-tidy-bot")
    headers = page.locator("table.heatmap thead th").all_inner_texts()
    cells = row.locator("td")
    drop = cells.nth(headers.index("db:ddl:drop") - 1)
    assert "⚠" in drop.inner_text() and "repeated" in (drop.get_attribute("class") or "")
    assert "escalated in" in (drop.get_attribute("title") or "")
    write = cells.nth(headers.index("db:write") - 1)
    assert "○" in write.inner_text() and "never used" in (write.get_attribute("title") or "")
    assert int(cells.nth(headers.index("db:read") - 1).locator(".n").inner_text()) >= 2
    page.select_option("select[name=window]", "24h")
    page.click(".filters button")
    page.wait_for_url("**window=24h**")


def test_the_anomaly_feed_filters_links_to_the_step_and_resolves_with_an_audited_comment(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    page.goto("/ui/apps/app1/anomalies")
    page.select_option("select[name=severity]", "critical")
    page.select_option("select[name=agent]", "dba-assistant-prod")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**severity=critical**")
    items = page.locator("#feed li.anomaly")
    count = items.count()
    assert count >= 1
    assert all("critical" in t for t in items.locator(".badge").first.all_inner_texts())
    first = items.first
    finding_id = first.get_attribute("data-finding")
    first.locator("input[name=comment]").fill("Confirmed with the DBA: planned drop.")
    first.locator("button", has_text="Resolve").click()
    page.wait_for_load_state()
    assert page.locator(f'#feed li[data-finding="{finding_id}"]').count() == 0
    page.select_option("select[name=state]", "resolved")
    page.click(".filters button[type=submit]")
    resolved = page.locator(f'#feed li[data-finding="{finding_id}"]')
    resolved.locator("details.audit summary").click()
    history = resolved.locator("details.audit").inner_text()
    key_id = site.keys["all"].split("_")[1]
    assert "resolve" in history and actor_label(key_id) in history and "planned drop" in history
    assert key_id not in history
    resolved.locator("input[name=comment]").fill("Reopened: the drop was not planned.")
    resolved.locator("button", has_text="Reopen").click()
    page.wait_for_load_state()
    with records(site.store) as rtx:
        audit = rtx.audit("tenant-a", "app1", str(finding_id))
        row = rtx.get_finding("tenant-a", "app1", str(finding_id))
    assert [a.action for a in audit] == ["resolve", "reopen"]
    # As through the API: each change is a triage event in the run's log chain.
    assert row is not None
    logged = [
        json.loads(e.payload or b"")
        for e in site.store.run_events("tenant-a", "app1", row.run_id)
        if e.kind == "triage"
    ]
    assert [(t["action"], t["by"]) for t in logged] == [
        ("resolve", actor_label(key_id)),
        ("reopen", actor_label(key_id)),
    ]
    page.goto("/ui/apps/app1/anomalies?severity=critical&agent=dba-assistant-prod")
    page.locator("#feed li.anomaly a", has_text=re.compile(r"^step \d+$")).first.click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{64}#step-\d+$"))
    wait_until(page, "document.getElementById(location.hash.slice(1)).open")
    no_script_ran(page)
