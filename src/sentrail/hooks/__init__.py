"""Hook adapters: sentrail as the decision point of coding agents (docs/hooks.md).

- :mod:`.payload` — reading a hook payload from stdin (bounded, typed accessors).
- :mod:`.mapping` — client tools as sentrail tool calls; tool output as results.
- :mod:`.session` — the per-session NDJSON log (0600, locked) that outlives a hook process.
- :mod:`.runner` — replaying the log into a decision point, then deciding or observing.
- :mod:`.claude` — the Claude Code protocol (Codex follows it); :mod:`.cursor` — Cursor's.
- :mod:`.dispatch` — one hook end to end, failing closed on any error.
- :mod:`.install` — writing (and removing) the hook entries in a client's settings file.
- :mod:`.policy` — the built-in coding-agent policy used without ``--policy``.
"""
