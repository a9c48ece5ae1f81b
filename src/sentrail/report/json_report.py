"""The JSON report (docs/report.md), written incrementally so memory stays flat.

The report is meant to be printed as well as parsed, so it is as inert on a terminal as
the text output: the characters that :mod:`sentrail.report.escape` shows as escapes there
(C1 controls such as U+009B CSI, DEL, bidi overrides and isolates, zero-width and other
format characters) are written as JSON ``\\uXXXX`` escapes here. A JSON reader gets the
same strings back; a terminal never sees the raw characters. (C0 controls are escaped by
every JSON encoder already.)
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from types import TracebackType
from typing import IO, Any

import msgspec

from sentrail.forensics.explain import Explanation, explain
from sentrail.model.finding import Finding, RiskContribution, RunResult, Severity
from sentrail.model.judgement import JudgeAnswer, judged_verdict

REPORT_FORMAT = "sentrail.report/1"

# The UTF-8 encodings of the set escape.py makes visible (bar the C0 controls and lone
# surrogates, which JSON never holds raw): DEL, U+0080-U+009F, U+00AD, U+034F, U+061C,
# U+115F, U+1160, U+17B4, U+17B5, U+180B-U+180F, U+200B-U+200F, U+2028-U+202E,
# U+2060-U+206F, U+3164, U+FEFF, U+FFA0, U+FFF0-U+FFFB, U+1BCA0-U+1BCA3, U+1D173-U+1D17A
# and U+E0000-U+E0FFF (tag characters, variation selectors supplement). UTF-8 is
# self-synchronising, so these byte sequences only ever match whole characters, and only
# inside JSON strings.
_UNSAFE_UTF8 = re.compile(
    rb"\x7f|\xc2[\x80-\x9f\xad]|\xcd\x8f|\xd8\x9c|\xe1\x85[\x9f\xa0]|\xe1\x9e[\xb4\xb5]"
    rb"|\xe1\xa0[\x8b-\x8f]|\xe2\x80[\x8b-\x8f\xa8-\xae]|\xe2\x81[\xa0-\xaf]|\xe3\x85\xa4"
    rb"|\xef\xbb\xbf|\xef\xbe\xa0|\xef\xbf[\xb0-\xbb]|\xf0\x9b\xb2[\xa0-\xa3]"
    rb"|\xf0\x9d\x85[\xb3-\xba]|\xf3\xa0[\x80-\xbf][\x80-\xbf]"
)


def _json_escape(m: re.Match[bytes]) -> bytes:
    c = ord(m.group(0).decode("utf-8"))
    if c < 0x10000:
        return b"\\u%04x" % c
    c -= 0x10000  # a tag character: JSON writes it as its UTF-16 surrogate pair
    return b"\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))


def terminal_safe_json(data: bytes) -> bytes:
    """Encoded JSON with every character a terminal could act on written as ``\\uXXXX``."""
    return _UNSAFE_UTF8.sub(_json_escape, data)


class Summary(msgspec.Struct):
    runs: int = 0
    critical: int = 0
    warnings: int = 0
    clean: int = 0
    invalid: int = 0
    steps: int = 0

    def count(self, result: RunResult) -> None:
        self.runs += 1
        self.steps += result.steps
        worst = result.worst
        if worst is Severity.CRITICAL:
            self.critical += 1
        elif worst is Severity.WARNING:
            self.warnings += 1
        else:
            self.clean += 1


class RunEntry(msgspec.Struct):
    path: str
    run_id: str
    agent_id: str
    verdict: str
    risk_score: int
    findings: list[Finding]
    steps: int
    status: str | None
    risk_contributions: list[RiskContribution]
    suppressed: list[Finding]
    explanations: list[Explanation]


class JudgedRunEntry(RunEntry):
    """A run a semantic judge was asked about: its answer is evidence kept apart from the
    findings (``judgement``), and ``judged_verdict`` is the verdict it would raise the run
    to (never lower); ``verdict`` stays the rules' own."""

    judgement: JudgeAnswer
    judged_verdict: str


class ErrorEntry(msgspec.Struct):
    path: str
    error: str


def run_entry(path: str, r: RunResult) -> RunEntry:
    return RunEntry(
        path=path,
        run_id=r.run_id,
        agent_id=r.agent_id,
        verdict=r.verdict.value,
        risk_score=r.risk_score,
        findings=r.findings,
        steps=r.steps,
        status=r.status,
        risk_contributions=r.risk_contributions,
        suppressed=r.suppressed,
        explanations=explain(None, r),
    )


class JsonReportWriter:
    """Runs are spooled to a temporary file as they come; ``close`` writes the report with
    the summary first. The output file appears whole or not at all (atomic rename)."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.summary = Summary()
        self.policy = policy
        self.errors: list[ErrorEntry] = []
        # What a semantic judge did in the batch (set when one was asked for): a section
        # of its own, after the policy; absent otherwise, so the report is unchanged.
        self.judge: Any = None
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._first = True
        self._enc = msgspec.json.Encoder()

    def add(self, path: str, result: RunResult, judgement: JudgeAnswer | None = None) -> None:
        self.summary.count(result)
        if not self._first:
            self._spool.write(b",\n")
        self._first = False
        entry = run_entry(path, result)
        if judgement is not None:
            fields = {f: getattr(entry, f) for f in RunEntry.__struct_fields__}
            entry = JudgedRunEntry(
                **fields,
                judgement=judgement,
                judged_verdict=judged_verdict(result.verdict, judgement).value,
            )
        self._spool.write(self._encode(entry))

    def add_error(self, path: str, error: str) -> None:
        self.summary.invalid += 1
        self.errors.append(ErrorEntry(path, error))

    def _encode(self, obj: Any) -> bytes:
        return terminal_safe_json(self._enc.encode(obj))

    def write_to(self, out: IO[bytes]) -> None:
        enc = self._encode
        out.write(b'{"format":' + enc(REPORT_FORMAT))
        out.write(b',\n"summary":' + enc(self.summary))
        out.write(b',\n"policy":' + enc(self.policy))
        if self.judge is not None:
            out.write(b',\n"judge":' + enc(self.judge))
        out.write(b',\n"runs":[\n')
        self._spool.seek(0)
        while chunk := self._spool.read(1 << 20):
            out.write(chunk)
        out.write(b'\n],\n"errors":' + enc(self.errors) + b"}\n")

    def write_file(self, path: str) -> None:
        """Write the report to ``path``: atomically (temporary file, then rename) for a
        regular file; straight into anything else (``/dev/null``, a FIFO, a terminal),
        which a rename would replace instead of writing to."""
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            with open(path, "wb") as out:
                self.write_to(out)
            return
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sentrail-report-")
        try:
            with os.fdopen(fd, "wb") as out:
                self.write_to(out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> JsonReportWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
