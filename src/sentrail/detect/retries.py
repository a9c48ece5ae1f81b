"""excessive_retries: bursts of repeated calls to the same tool.

A call joins the burst of the previous call to the same tool when that call is recent (at
most ``RECENT_CALLS - 1`` other tool calls in between) and the repeat looks like a retry:
the parameters are identical, the previous call failed, or a credential-like parameter
changed. Successful calls with changing parameters (reading several files, running several
read-only commands) are ordinary work and never form a burst.

A burst is reported once: when it reaches the profile's ``retry_threshold`` (warning;
critical for mutating parameters on a credential/auth-like tool or field, or when the calls
keep failing — brute force), or, below the threshold, as info when the burst ends (a later
call moves it out of the window, or the run ends). A reported burst that later turns
critical is reported once more, at the step where it did.
"""

from __future__ import annotations

from typing import Any

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.model.finding import Category, Severity
from sentrail.policy.risk import tool_words

RECENT_CALLS = 4  # the previous call to the tool must be one of the last 4 calls
CREDENTIAL_WORDS = frozenset(
    {
        *("password", "passwd", "passphrase", "pass", "pwd", "passcode", "pin"),
        *("token", "otp", "totp", "mfa", "key", "apikey", "secret", "credential"),
        *("credentials", "auth", "login", "logon", "signin"),
    }
)
_AUTH_TOOL_WORDS = CREDENTIAL_WORDS | {"authenticate", "sign", "session", "sudo"}
_WORD_CACHE: dict[str, bool] = {}
_MAX_KEYS_LISTED = 20


def is_credential_key(name: str) -> bool:
    """True for parameter names such as ``password``, ``api_key``, ``otpCode``, ``pin``."""
    hit = _WORD_CACHE.get(name)
    if hit is None:
        hit = not CREDENTIAL_WORDS.isdisjoint(tool_words(name))
        if len(_WORD_CACHE) < 10_000:
            _WORD_CACHE[name] = hit
    return hit


def _changed_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = [k for k, v in b.items() if k not in a or a[k] != v]
    keys.extend(k for k in a if k not in b)
    return keys


class _Burst:
    __slots__ = ("calls", "changed", "failures", "first", "last", "reported", "steps", "tool")

    def __init__(self, facts: StepFacts, ordinal: int) -> None:
        self.tool = facts.tool or ""
        self.first = facts
        self.last = facts
        self.steps = [facts.index]
        self.calls = ordinal  # ordinal of the last call
        self.failures = int(facts.failed)
        self.changed: dict[str, None] = {}
        self.reported: Severity | None = None

    @property
    def identical(self) -> bool:
        return not self.changed


class ExcessiveRetries(Detector):
    name = "excessive_retries"

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._threshold = max(2, ctx.profile.profile.retry_threshold)
        self._ordinal = 0
        self._live: dict[str, _Burst] = {}  # tool -> its burst, while still recent
        self._auth_tools: dict[str, bool] = {}

    def on_step(self, facts: StepFacts) -> None:
        tool = facts.tool
        if tool is None:
            return
        self._ordinal += 1
        ordinal = self._ordinal
        live = self._live
        if len(live) > 1 or (live and tool not in live):
            for name in [n for n, b in live.items() if ordinal - b.calls > RECENT_CALLS]:
                self._close(live.pop(name))
        burst = live.get(tool)
        if burst is None:
            live[tool] = _Burst(facts, ordinal)
            return
        prev = burst.last
        changed: list[str] = []
        if prev.params != facts.params:
            changed = _changed_keys(prev.params, facts.params)
            if not (prev.failed or any(is_credential_key(k) for k in changed)):
                self._close(burst)
                live[tool] = _Burst(facts, ordinal)
                return
        burst.last = facts
        burst.calls = ordinal
        burst.steps.append(facts.index)
        burst.failures += facts.failed
        for k in changed:
            burst.changed[k] = None
        count = len(burst.steps)
        if count < self._threshold:
            return
        severity = self._severity(burst)
        if burst.reported is None or severity.rank > burst.reported.rank:
            burst.reported = severity
            self._report(burst, severity)

    def finish(self) -> None:
        for burst in self._live.values():
            self._close(burst)
        self._live.clear()

    def _is_auth_tool(self, tool: str) -> bool:
        hit = self._auth_tools.get(tool)
        if hit is None:
            hit = self._auth_tools[tool] = not _AUTH_TOOL_WORDS.isdisjoint(tool_words(tool))
        return hit

    def _severity(self, burst: _Burst) -> Severity:
        if burst.identical:
            return Severity.WARNING
        count = len(burst.steps)
        credential = self._is_auth_tool(burst.tool) or any(map(is_credential_key, burst.changed))
        failing = burst.failures >= 2 and burst.failures >= count - 1
        return Severity.CRITICAL if credential or failing else Severity.WARNING

    def _close(self, burst: _Burst) -> None:
        """A burst that never reached the threshold: info, when it is a retry at all."""
        if burst.reported is not None or len(burst.steps) < 2:
            return
        burst.reported = Severity.INFO
        self._report(burst, Severity.INFO)

    def _report(self, burst: _Burst, severity: Severity) -> None:
        count = len(burst.steps)
        identical = burst.identical
        kind = "identical" if identical else "mutating"
        changed = list(burst.changed)
        if identical:
            why = "" if severity is Severity.INFO else " (likely a bug or outage)"
        else:
            shown = ", ".join(changed[:5]) + (", …" if len(changed) > 5 else "")
            why = f" ({shown} changed)"
            if severity is Severity.CRITICAL:
                why += " — possible brute force"
            elif severity is Severity.WARNING:
                why += " — possible probing"
        self.ctx.emit(
            f"excessive_retries.{kind}",
            Category.EXCESSIVE_RETRIES,
            severity,
            burst.last,
            f"Retry detected — {burst.tool} called {count}x with {kind} params{why}",
            {
                "tool": burst.tool,
                "count": count,
                "params": kind,
                "changed_keys": changed[:_MAX_KEYS_LISTED],
                "failures": burst.failures,
                "steps": list(burst.steps),
                "threshold": self._threshold,
            },
            key=f"{burst.tool}\x00{burst.first.index}\x00{severity.value}",
        )
