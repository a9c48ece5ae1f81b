"""Screenshots of every dashboard view for the docs: ``make screenshots``.

Serves the example traces (plus a streamed run still running, a held call and some
containment) exactly as the browser tests do, signs in with the system Chromium, pins
the log's verifier key, and saves one PNG per view under the given directory.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from sentrail.enforce.model import args_hash
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, example_site, sign_in, wait_until
from tests.ui.test_views import PROD_DELETE, run_url


def replay_audit(out: Path) -> None:
    """The replay audit tab: the triage restart run under the changed bundle (the
    service's current one), its own bundle kept by hash and cited by the run."""
    from tests.ui.test_replay_audit import NEW, RESTART, replay_site, sha

    for site in replay_site(Path(tempfile.mkdtemp()), hostile=False):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(
                base_url=site.url, viewport={"width": 1366, "height": 860}
            ).new_page()
            sign_in(page, site)
            page.goto(f"/ui/apps/app1/runs/{sha(RESTART)}?tab=replay&policy={sha(NEW)}")
            page.locator("#replay-steps").scroll_into_view_if_needed()
            page.screenshot(path=str(out / "replay-audit.png"), full_page=True)
            browser.close()


def main(out: Path, only: str | None = None) -> None:
    """Every view, or ``only`` one (``replay-audit``)."""
    out.mkdir(parents=True, exist_ok=True)
    replay_audit(out)
    if only == "replay-audit":
        print(f"screenshot written to {out / 'replay-audit.png'}")
        return
    for site in example_site("sqlite", Path(tempfile.mkdtemp())):
        svc = site.app.state.services
        doc = json.loads((EXAMPLES / "traces" / "prod-delete.json").read_bytes())
        call = doc["steps"][3]["tool_call"]
        svc.approvals.request(
            "tenant-a",
            doc["run_id"],
            doc["agent_id"],
            call["tool"],
            args_hash(call["parameters"]),
            "db.delete_table is a destructive action in prod: it needs an approval",
        )
        svc.containment.quarantine("tenant-a", "data-fix-agent", "key:oncall", "INC-2231")
        svc.containment.disable_tool("tenant-a", "db.delete_table", "key:oncall", "INC-2231")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(
                base_url=site.url, viewport={"width": 1366, "height": 860}
            ).new_page()
            page.goto("/ui/login")
            page.screenshot(path=str(out / "login.png"))
            sign_in(page, site)
            page.goto("/ui/settings")
            page.fill("#pinned-key", site.signer.verifier_key())
            page.click("#pin-form button[type=submit]")
            page.goto("/ui/apps/app1/runs")
            page.screenshot(path=str(out / "overview.png"), full_page=True)
            page.goto(run_url() + "#step-2")
            wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'ok'")
            page.screenshot(path=str(out / "timeline.png"), full_page=True)
            page.goto(run_url(tab="decisions"))
            page.locator(".option.rejected").first.focus()
            page.screenshot(path=str(out / "decision-tree.png"))
            page.goto(run_url(tab="provenance"))
            wait_until(page, "document.querySelector('[data-prov=run]').dataset.state === 'ok'")
            page.screenshot(path=str(out / "provenance.png"))
            page.goto("/ui/apps/app1/permissions?window=30d")
            page.screenshot(path=str(out / "heatmap.png"), full_page=True)
            page.goto("/ui/apps/app1/anomalies")
            page.screenshot(path=str(out / "anomaly-feed.png"))
            page.goto("/ui/apps/app1/approvals")
            page.screenshot(path=str(out / "approvals.png"), full_page=True)
            browser.close()
    assert PROD_DELETE
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"),
        sys.argv[2] if len(sys.argv) > 2 else None,
    )
