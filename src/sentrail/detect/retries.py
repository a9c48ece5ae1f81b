"""excessive_retries: bursts of repeated calls to the same tool.

A call joins the burst of the previous call to the same tool when that call is recent (at
most ``RECENT_CALLS - 1`` other tool calls in between and, when both carry timestamps, at
most ``RECENT_SECONDS`` earlier) and the repeat looks like a retry:
the parameters are identical, the previous call failed, or a credential-like parameter
changed. Successful calls with changing parameters (reading several files, running several
read-only commands) are ordinary work and never form a burst.

A burst is reported once: when it reaches the profile's ``retry_threshold`` (warning;
critical for mutating parameters on a credential/auth-like tool or field, or when the calls
keep failing while more than the target changes — brute force), or, below the threshold,
as info when the burst ends (a later call moves it out of the window, or the run ends). A
reported burst that later turns critical is reported once more, at the step where it did.

Severity scales with the count: a burst that reaches ``RUNAWAY_FACTOR`` times the threshold
(at least ``RUNAWAY_MIN`` calls) is a runaway loop, critical when it repeats a write
(the same payment or e-mail sent over and over) or keeps failing (hammering a tool that
refuses); a runaway read that succeeds stays a warning. Each burst is reported at most
three times (below, at the threshold, at the runaway count), so a loop of thousands of
calls costs no more findings than one of thirty.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sentrail.detect.base import Detector, RunContext, StepFacts
from sentrail.detect.correlation import TARGET_KEYS
from sentrail.model.finding import Category, Severity
from sentrail.policy.risk import tool_words

RECENT_CALLS = 4  # the previous call to the tool must be one of the last 4 calls
RECENT_SECONDS = 120.0  # and, when both carry timestamps, at most this much earlier
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
_PRUNE_AT = 2 * RECENT_CALLS  # stale bursts are closed lazily, when this many are kept
_MISSING = object()
RUNAWAY_FACTOR = 3  # a burst of this many times the threshold is a runaway loop
RUNAWAY_MIN = 10


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
    __slots__ = (
        "calls",
        "changed",
        "failures",
        "first",
        "first_ordinal",
        "last",
        "reported",
        "steps",
        "tool",
    )

    def __init__(self, facts: StepFacts, ordinal: int) -> None:
        self.tool = facts.tool or ""
        self.first = facts
        self.last = facts
        self.steps = [facts.index]
        self.calls = ordinal  # ordinal of the last call
        self.first_ordinal = ordinal
        self.failures = int(facts.failed)
        self.changed: dict[str, None] = {}
        self.reported: Severity | None = None

    @property
    def identical(self) -> bool:
        return not self.changed


class ExcessiveRetries(Detector):
    name = "excessive_retries"
    category = Category.EXCESSIVE_RETRIES
    rules: ClassVar[dict[str, tuple[Severity, ...]]] = {
        "excessive_retries.identical": (Severity.INFO, Severity.WARNING, Severity.CRITICAL),
        "excessive_retries.mutating": (Severity.INFO, Severity.WARNING, Severity.CRITICAL),
    }

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._threshold = max(2, ctx.profile.profile.retry_threshold)
        self._runaway = max(RUNAWAY_MIN, RUNAWAY_FACTOR * self._threshold)
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
        burst = live.get(tool)
        if burst is not None and ordinal - burst.calls > RECENT_CALLS:
            self._close(burst)
            burst = None
        if burst is None:
            if len(live) >= _PRUNE_AT:
                self._prune(ordinal)
            live[tool] = _Burst(facts, ordinal)
            return
        prev = burst.last
        before, after = prev.params, facts.params
        changed: list[str] = []
        if before != after:
            if prev.failed or any(
                is_credential_key(k) and before.get(k, _MISSING) != v for k, v in after.items()
            ):
                changed = _changed_keys(before, after)
            else:  # ordinary successful work with new parameters
                self._restart(burst, facts, ordinal)
                return
        t0, t1 = prev.time, facts.time
        if t0 is not None and t1 is not None and (t1 - t0).total_seconds() > RECENT_SECONDS:
            self._restart(burst, facts, ordinal)
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
        if (
            burst.reported is None
            or severity.rank > burst.reported.rank
            or (count == self._runaway and severity.rank >= burst.reported.rank)
        ):
            burst.reported = severity
            self._report(burst, severity)

    def _restart(self, burst: _Burst, facts: StepFacts, ordinal: int) -> None:
        self._close(burst)
        self._live[burst.tool] = _Burst(facts, ordinal)

    def _prune(self, ordinal: int) -> None:
        """Close the bursts that are no longer recent (their info finding is due)."""
        live = self._live
        for name in [n for n, b in live.items() if ordinal - b.calls > RECENT_CALLS]:
            self._close(live.pop(name))

    def finish(self) -> None:
        for burst in self._live.values():
            self._close(burst)
        self._live.clear()

    def _is_auth_tool(self, tool: str) -> bool:
        hit = self._auth_tools.get(tool)
        if hit is None:
            hit = self._auth_tools[tool] = not _AUTH_TOOL_WORDS.isdisjoint(tool_words(tool))
        return hit

    def _runaway_harm(self, burst: _Burst) -> bool:
        """A runaway burst (many times the threshold) of a write, or of calls that keep
        failing."""
        count = len(burst.steps)
        return count >= self._runaway and (burst.last.is_write or 2 * burst.failures >= count)

    def _severity(self, burst: _Burst) -> Severity:
        if self._runaway_harm(burst):
            return Severity.CRITICAL
        if burst.identical:
            return Severity.WARNING
        count = len(burst.steps)
        credential = self._is_auth_tool(burst.tool) or any(map(is_credential_key, burst.changed))
        # Failing calls whose only change is the target (the same operation tried on several
        # resources) are probing the boundary, not guessing: warning.
        failing = (
            burst.failures >= 2
            and burst.failures >= count - 1
            and any(k.lower() not in TARGET_KEYS for k in burst.changed)
        )
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
        runaway = count >= self._runaway
        if identical:
            why = "" if severity is Severity.INFO else " (likely a bug or outage)"
            if severity is Severity.CRITICAL:
                why = " — a runaway loop"
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
                "steps": list(burst.steps) if count <= 50 else burst.steps[:25] + burst.steps[-25:],
                "threshold": self._threshold,
                "runaway": runaway,
                "write": burst.last.is_write,
            },
            key=f"{burst.tool}\x00#{burst.first_ordinal}\x00{severity.value}"
            + ("\x00runaway" if runaway else ""),
        )
