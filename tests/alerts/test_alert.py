from __future__ import annotations

import hashlib
import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from sentrail.alerts.alert import CONTAINMENT, build_alert, dedup_key_of, resource_of
from sentrail.alerts.policy import Tier
from sentrail.alerts.redact import MASK, excerpt, mask_secrets, mask_text
from sentrail.model.finding import Category, Severity
from tests.alerts.helpers import finding, run

NOW = 1_772_720_521.0


def test_alert_carries_the_context_a_responder_needs() -> None:
    r = run(6)
    f = finding(step=3)
    a = build_alert(
        f,
        r,
        r.steps,
        tier=Tier.PAGE,
        now=NOW,
        base_url="https://sentrail.example.com/",
        app="payments",
        trace_hash="ab" * 32,
        recent=3,
    )
    assert a.agent_id == "prod-triage-au-east"
    assert a.run_id == "run-1"
    assert a.step_index == 3
    assert a.rule == f.rule
    assert a.tier is Tier.PAGE
    assert a.tool == "http.post"
    assert a.resource == "https://drop.example"
    assert a.tenant_id == "acme"
    assert a.link == f"https://sentrail.example.com/v1/apps/payments/traces/{'ab' * 32}"
    assert [s.step_index for s in a.recent_steps] == [1, 2, 3]  # up to the finding's step
    assert a.recent_steps[-1].tool == "tool.op3"
    assert a.recent_steps[-1].status == "success"
    assert a.containment == CONTAINMENT[Category.DATA_EXFILTRATION]
    assert "drop.example" in a.evidence_excerpt
    assert a.created_at == "2026-03-05T14:22:01.000Z"


def test_link_without_trace_hash_uses_the_run_id_hash_and_quotes_the_app() -> None:
    a = build_alert(finding(), run(), tier=Tier.TICKET, now=NOW, app="a b/c")
    assert a.link.endswith(f"/v1/apps/a%20b%2Fc/traces/{hashlib.sha256(b'run-1').hexdigest()}")


def test_run_level_finding_takes_the_last_steps() -> None:
    r = run(8)
    a = build_alert(finding(step=None), r, r.steps, tier=Tier.PAGE, now=NOW, recent=2)
    assert [s.step_index for s in a.recent_steps] == [6, 7]
    assert a.step_index is None


def test_every_category_has_containment_advice() -> None:
    assert set(CONTAINMENT) == set(Category)


def test_evidence_is_masked_bounded_and_escaped() -> None:
    evidence = {
        "tool": "http.post",
        "password": "hunter2-very-secret",
        "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123"},
        "body": "key AKIAABCDEFGHIJKLMNOP sent \x1b[31mred\u202e",
        "blob": "x" * 5000,
    }
    r = run()
    a = build_alert(
        finding(evidence=evidence), r, r.steps, tier=Tier.PAGE, now=NOW, evidence_limit=300
    )
    text = a.evidence_excerpt
    assert "hunter2" not in text
    assert "abcdefghijklmnop" not in text
    assert "AKIAABCDEFGHIJKLMNOP" not in text
    assert MASK in text
    assert "\x1b" not in text and "\u202e" not in text and "\n" not in text
    assert len(text) <= 300 + 30  # the cut plus its "… (+N chars)" note


def test_trace_strings_are_made_inert() -> None:
    r = run()
    r.agent_id = "agent\x1b]8;;evil\x07"
    f = finding(message="line1\nline2 \u202egnp.exe")
    a = build_alert(f, r, r.steps, tier=Tier.PAGE, now=NOW)
    for s in (a.agent_id, a.message):
        assert "\x1b" not in s and "\n" not in s and "\u202e" not in s and "\x07" not in s


def test_dedup_key_is_rule_run_resource() -> None:
    r = run()
    a1 = build_alert(finding(step=1), r, r.steps, tier=Tier.PAGE, now=NOW)
    a2 = build_alert(finding(step=2), r, r.steps, tier=Tier.PAGE, now=NOW + 5)
    assert a1.dedup_key == a2.dedup_key  # same rule, run and destination
    other = finding(step=2, evidence={"tool": "http.post", "destination": "https://other"})
    assert build_alert(other, r, r.steps, tier=Tier.PAGE, now=NOW).dedup_key != a1.dedup_key
    assert a1.dedup_key == dedup_key_of(a1.rule, "run-1", "https://drop.example")
    assert len(a1.dedup_key) <= 255  # PagerDuty's limit


def test_resource_falls_back_to_step_resource_then_tool() -> None:
    r = run()
    f = finding(evidence={"permission": "db:write"}, step=1)
    assert resource_of(f, r.steps[1]) == "host-1"
    r.steps[1].resource = None
    assert resource_of(f, r.steps[1]) == "tool.op1"
    assert resource_of(finding(evidence={}), None) == ""


def test_alert_round_trips_as_json() -> None:
    a = build_alert(finding(), run(), tier=Tier.DIGEST, now=NOW)
    doc = json.loads(msgspec.json.encode(a))
    assert doc["tier"] == "digest"
    assert doc["severity"] == Severity.CRITICAL.value


_KEYS = st.sampled_from(["AKIA" + "A" * 16, "ghp_" + "a1" * 18, "sk-live-" + "Z9" * 12])


@given(prefix=st.text(max_size=40), secret=_KEYS, suffix=st.text(max_size=40))
def test_provider_keys_are_masked_wherever_they_appear(
    prefix: str, secret: str, suffix: str
) -> None:
    text = f"{prefix} {secret} {suffix}"
    assert secret not in mask_text(text)
    assert secret not in excerpt({"nested": [{"v": text}]}, 10_000)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_masking_keeps_shape_and_excerpt_stays_bounded(value: object) -> None:
    masked = mask_secrets(value)
    assert type(masked) is type(value)
    assert len(excerpt(value, 60)) <= 60 + 30
