"""Live updates (server-sent events), browser-side provenance checks, and the approvals
inbox and containment, in a real Chromium."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentrail.enforce.model import args_hash, canonical_args
from sentrail.evidence.note import Signer
from sentrail.service.auth import actor_label
from sentrail.store.records import records
from tests.ui.conftest import EXAMPLES, Site, sign_in, wait_until
from tests.ui.test_views import PROD_DELETE, no_script_ran, run_url

EVENTS = (EXAMPLES / "events" / "triage-restart.ndjson").read_bytes().splitlines()


def _streamed(lines: list[bytes], run_id: str) -> bytes:
    out = []
    for line in lines:
        doc = json.loads(line)
        doc["run_id"] = run_id
        out.append(json.dumps(doc).encode())
    return b"\n".join(out) + b"\n"


def test_a_new_finding_appears_at_the_top_of_the_feed_without_a_reload(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    page.goto("/ui/apps/app1/anomalies")
    page.evaluate("window.__same_page = true")
    body = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    body["run_id"] = "run-live-1"
    site.ingest("app1", json.dumps(body).encode())
    page.wait_for_selector("#feed li.anomaly.fresh >> text=run-live-1")
    assert page.evaluate("window.__same_page") is True  # no reload happened
    fresh = page.locator("#feed li.anomaly.fresh").first
    assert fresh.locator("form.triage input[name=csrf]").get_attribute("value")
    no_script_ran(page)


def test_a_running_runs_timeline_grows_as_its_steps_arrive(page: Any, site: Site) -> None:
    run_id = "run-streaming-1"
    started = site.ingest("app1", _streamed(EVENTS[:2], run_id), kind="events")
    assert started["completed_runs"] == []
    trace_hash = hashlib.sha256(json.dumps({**json.loads(EVENTS[0]), "run_id": run_id}).encode())
    sign_in(page, site)
    page.goto(run_url(trace_hash.hexdigest()))
    assert page.locator("#steps details").count() == 1
    assert page.locator("svg.timeline a.bar-link").count() == 1
    page.evaluate("window.__same_page = true")
    site.ingest("app1", _streamed(EVENTS[2:4], run_id), kind="events")
    page.wait_for_selector("details#step-2")
    assert page.locator("svg.timeline a.bar-link").count() == 3
    assert page.evaluate("window.__same_page") is True
    site.ingest("app1", _streamed(EVENTS[4:], run_id), kind="events")
    wait_until(
        page,
        "document.getElementById('live-state').textContent.includes('executed')"
        " || document.getElementById('live-state').textContent.includes('blocked')",
    )
    no_script_ran(page)


def _pin(page: Any, key: str) -> None:
    page.goto("/ui/settings")
    page.fill("#pinned-key", key)
    page.click("#pin-form button[type=submit]")
    assert "Pinned" in page.locator("#pin-status").inner_text()


def test_provenance_is_verified_by_the_browser_against_the_pinned_key_only(
    page: Any, site: Site
) -> None:
    sign_in(page, site)
    page.goto(run_url())
    run_badge = page.locator('[data-prov="run"]')
    wait_until(page, "document.querySelector('[data-prov=run]').dataset.state")
    assert run_badge.get_attribute("data-state") == "unpinned"  # nothing trusted by default
    _pin(page, site.signer.verifier_key())
    page.goto(run_url(tab="provenance"))
    wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'ok'")
    assert "verified" in page.locator("#prov-summary").inner_text()
    cells = page.locator("#prov-events .prov-cell")
    assert cells.count() >= 1 and all(c.get_attribute("data-state") == "ok" for c in cells.all())
    page.goto(run_url())
    wait_until(
        page,
        "[...document.querySelectorAll('[data-prov=step]')].every(b => b.dataset.state === 'ok')",
    )
    # Another key with the same name: the server's checkpoint must not verify under it.
    impostor = Signer(site.signer.name, Ed25519PrivateKey.generate()).verifier_key()
    _pin(page, impostor)
    page.goto(run_url())
    wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'bad'")
    assert "not signed by the pinned key" in run_badge.inner_text()
    no_script_ran(page)


def test_a_tampered_payload_fails_its_badge_in_the_browser(page: Any, site: Site) -> None:
    with records(site.store) as rtx:
        run = rtx.run_by_hash("tenant-a", "app1", PROD_DELETE)
    assert run is not None
    events = site.store.run_events("tenant-a", "app1", run.run_id)
    # The server is compromised: it serves other bytes under the logged digest.
    original = site.store.run_events

    def lying(tenant: str, app: str, run_id: str) -> Any:
        out = original(tenant, app, run_id)
        if run_id == run.run_id:
            import msgspec

            out = [
                msgspec.structs.replace(e, payload=e.payload.replace(b"drop", b"keep"))
                if e.payload
                else e
                for e in out
            ]
        return out

    site.store.run_events = lying  # type: ignore[method-assign]
    try:
        sign_in(page, site)
        _pin(page, site.signer.verifier_key())
        page.goto(run_url(tab="provenance"))
        wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'bad'")
        assert (
            "does not hash to the logged digest" in page.locator('[data-prov="run"]').inner_text()
        )
    finally:
        site.store.run_events = original  # type: ignore[method-assign]
    assert events


def test_the_browser_checks_the_version_2_leaf_fields_the_server_serves(
    page: Any, site: Site
) -> None:
    """Version 2 leaves commit to when an event was received and whether it is sealed: a
    server that serves another time or flag for an entry fails that entry's check."""
    import msgspec

    with records(site.store) as rtx:
        run = rtx.run_by_hash("tenant-a", "app1", PROD_DELETE)
    assert run is not None
    (event,) = site.store.run_events("tenant-a", "app1", run.run_id)
    assert event.leaf_version == 2
    original = site.store.run_events
    sign_in(page, site)
    _pin(page, site.signer.verifier_key())
    for field, value in (("received_at", event.received_at + 1.0), ("sealed", not event.sealed)):

        def lying(
            tenant: str, app: str, run_id: str, field: str = field, value: Any = value
        ) -> Any:
            out = original(tenant, app, run_id)
            return [msgspec.structs.replace(e, **{field: value}) for e in out]

        site.store.run_events = lying  # type: ignore[method-assign]
        try:
            page.goto(run_url(tab="provenance"))
            wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'bad'")
            assert "v2" in page.locator("#prov-events .prov-leaf").first.inner_text()
        finally:
            site.store.run_events = original  # type: ignore[method-assign]
    page.goto(run_url(tab="provenance"))
    wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'ok'")


def test_the_approvals_inbox_shows_the_exact_held_call_and_records_who_approved(
    page: Any, site: Site
) -> None:
    svc = site.app.state.services
    doc = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    call = doc["steps"][3]["tool_call"]
    held = svc.approvals.request(
        "tenant-a",
        doc["run_id"],
        doc["agent_id"],
        call["tool"],
        args_hash(call["parameters"]),
        "destructive action in prod",
        app="app1",
    )
    svc.containment.quarantine("tenant-a", doc["agent_id"], "key:ops", "dropping tables")
    svc.containment.freeze_run("tenant-a", doc["run_id"], "key:ops", "under review", app="app1")
    sign_in(page, site)
    page.goto("/ui/apps/app1/approvals")
    item = page.locator(f'li.approval[data-approval="{held.approval_id}"]')
    text = item.inner_text()
    assert call["tool"] in text and "The exact call" in text
    assert json.dumps(call["parameters"]["table"]) in text  # the arguments themselves
    assert doc["agent_id"] in page.locator("section.card", has_text="Quarantined").inner_text()
    assert doc["run_id"] in page.locator("section.card", has_text="Frozen runs").inner_text()
    item.locator("input[name=reason]").fill("Change ticket CHG-1182 covers this drop.")
    item.locator("button", has_text="Deny").click()
    page.wait_for_load_state()
    assert page.locator(f'li.approval[data-approval="{held.approval_id}"]').count() == 0
    with records(site.store) as rtx:
        row = rtx.get_approval(held.approval_id)
    assert row is not None and row.status == "denied"
    assert row.decided_by == actor_label(site.keys["all"].split("_")[1])
    no_script_ran(page)


def test_an_approval_shows_the_arguments_it_recorded_for_a_run_not_yet_stored(
    page: Any, site: Site
) -> None:
    """The decision point holds a call of a run that is not in the store yet: the approval
    recorded the arguments themselves, so the inbox shows them (inert), checked by hash."""
    svc = site.app.state.services
    params = {"to": "<img src=x onerror=alert(1)>@evil.example", "amount": 9000}
    held = svc.approvals.request(
        "tenant-a",
        "run-not-stored-yet",
        "pay-agent",
        "payments.send",
        args_hash(params),
        "amount above the limit",
        app="app1",
        args_json=canonical_args(params).decode(),
    )
    forged = svc.approvals.request(
        "tenant-a",
        "run-not-stored-yet",
        "pay-agent",
        "payments.send",
        args_hash({"amount": 1}),
        "arguments that do not hash to what the approval binds are not shown",
        app="app1",
        args_json=canonical_args(params).decode(),
    )
    sign_in(page, site)
    page.goto("/ui/apps/app1/approvals")
    text = page.locator(f'li.approval[data-approval="{held.approval_id}"]').inner_text()
    assert "The exact call" in text and "onerror=alert(1)" in text and "9000" in text
    other = page.locator(f'li.approval[data-approval="{forged.approval_id}"]').inner_text()
    assert "The exact call" not in other and "9000" not in other
    no_script_ran(page)


def test_another_apps_key_sees_neither_the_approval_nor_the_containment(
    page: Any, site: Site
) -> None:
    svc = site.app.state.services
    doc = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
    svc.approvals.request(
        "tenant-a", doc["run_id"], doc["agent_id"], "db.delete_table", "0" * 64, "x", app="app1"
    )
    svc.containment.freeze_run("tenant-a", doc["run_id"], "key:ops", "under review", app="app1")
    sign_in(page, site, "other_app")
    page.goto("/ui/apps/app2/approvals")
    assert page.locator("li.approval").count() == 0
    assert doc["run_id"] not in page.content()
    response = page.goto("/ui/apps/app1/approvals")
    assert response is not None and response.status == 404


def test_a_run_is_frozen_and_its_agent_quarantined_from_the_run_page_with_a_reason(
    page: Any, site: Site
) -> None:
    sign_in(page, site)  # a key bound to app1: it may freeze app1's runs
    page.goto(run_url())
    page.locator("details.contain summary").click()
    form = page.locator("details.contain form")
    assert form.locator("button[value=quarantine]").count() == 0  # binds every app
    form.locator("input[name=reason]").fill("INC-77: stop the drops")
    form.locator("button[value=freeze_run]").click()
    page.wait_for_url(f"**{run_url()}")
    assert "frozen" in page.locator("#run-status").inner_text()
    csrf = page.locator("details.contain input[name=csrf]").get_attribute("value")
    forced = page.request.post(
        "/ui/apps/app1/containment",
        form={
            "csrf": csrf or "",
            "action": "quarantine",
            "agent": "dba-assistant-prod",
            "reason": "x",
        },
        headers={"Origin": site.url},
    )
    assert forced.status == 403  # refused by the server too, not only hidden
    page.context.clear_cookies()
    page.goto("/ui/")  # a key for every app of the tenant (it lands on the app list)
    page.fill("#api_key", site.keys["every_app"])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(run_url())
    page.locator("details.contain summary").click()
    form.locator("input[name=reason]").fill("INC-77: quarantine")
    form.locator("button[value=quarantine]").click()
    page.wait_for_url(f"**{run_url()}")
    with records(site.store) as rtx:
        log = rtx.containment_log("tenant-a")
    key = actor_label(site.keys["all"].split("_")[1])
    every = actor_label(site.keys["every_app"].split("_")[1])
    assert [(c.kind, c.actor) for c in log] == [("freeze_run", key), ("quarantine", every)]
    assert log[0].target == "run-e4b70d19-8c2f" and log[1].target == "dba-assistant-prod"
    page.goto("/ui/apps/app1/approvals")
    assert "dba-assistant-prod" in page.locator("section.card", has_text="Quarantined").inner_text()
    no_script_ran(page)


def test_a_read_key_has_no_containment_controls(page: Any, site: Site) -> None:
    sign_in(page, site, "read")
    page.goto(run_url())
    assert page.locator("details.contain").count() == 0
