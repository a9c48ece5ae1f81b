"""Plain data: traces, events, findings, verdicts, baselines. No I/O, no logic beyond parsing."""
