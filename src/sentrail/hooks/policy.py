"""The built-in policy for coding agents, used when a hook runs without ``--policy``.

Generic defaults (docs/policy.md, "Without a policy") deny every tool that is neither in a
registry nor read-only, which would stop a coding agent at its first shell command. This
bundle registers the tools the hook adapters map to (docs/hooks.md), sends unknown tools
(MCP servers) to approval instead of denying them, and suppresses the retry findings that
ordinary edit-test loops produce. ``sentrail hook default-policy`` prints it, as a start
for a policy of one's own; a ``--policy`` file replaces it entirely.
"""

from __future__ import annotations

from sentrail.policy.compiled import Policy
from sentrail.policy.load import load_policy, parse_policy

DEFAULT_POLICY_YAML = r"""version: 1
name: sentrail-coding-agent-default
description: >-
  Built-in policy for coding agents governed through hooks (Claude Code, Codex, Cursor).
  Shell commands and file writes are allowed unless a rule or a detector objects;
  destructive and privileged actions and unknown tools need an approval.

default_profile:
  id: "*"
  name: coding agent (built-in)
  retry_threshold: 3
  exfiltration:
    large_read_bytes: 200000
  enforcement:
    on_unknown: approval_required
    on_escalation: approval_required
    approval_for: [destructive, privileged_admin]

tools:
  - {name: shell.exec, risk: sensitive_write, description: a shell command}
  - {name: shell.read_output, risk: read_only, description: output of a background shell}
  - {name: shell.kill, risk: low_risk_write, description: stop a background shell}
  - {name: files.read, risk: read_only}
  - {name: files.search, risk: read_only}
  - {name: files.list, risk: read_only}
  - {name: files.write, risk: low_risk_write}
  - {name: files.patch, risk: low_risk_write}
  - {name: http.get, risk: read_only}
  - {name: web.search, risk: read_only}
  - {name: agent.delegate, risk: low_risk_write, description: start a sub-agent}
  - {name: agent.todo, risk: read_only, description: the agent's own task list}
  - {name: agent.plan, risk: read_only}
  - {name: agent.command, risk: low_risk_write, description: a slash command or skill}

rules:
  - id: builtin.no-unapproved-prod-destruction
    description: No destructive action in production without an approval
    severity: critical
    condition: 'tool.risk == "destructive" && step.environment == "prod" && !step.has_approval'
  - id: shell-delete-root-or-home
    description: Recursive deletion of the root, home or a top-level system directory
    severity: critical
    tools: [shell.exec]
    condition: >-
      has(params.command) && params.command.matches(
      '(^|[;&|(]\\s*|\\s)rm\\s+(-[A-Za-z]*[rR][A-Za-z]*\\s+|--recursive\\s+)+' +
      '(-[A-Za-z]+\\s+)*(/|~|\\$HOME|/(bin|boot|etc|lib|usr|var|home|root))/?(\\s|$|\\*)')
  - id: shell-pipe-to-interpreter
    description: A script downloaded and piped straight into a shell or interpreter
    severity: warning
    tools: [shell.exec]
    condition: >-
      has(params.command) && params.command.matches(
      '(curl|wget)[^|]*\\|\\s*(sudo\\s+)?(ba|z|da|k)?sh\\b|' +
      '(curl|wget)[^|]*\\|\\s*(python3?|perl|ruby|node)\\b')
  - id: shell-privileged
    description: A command run with sudo or su
    severity: warning
    tools: [shell.exec]
    condition: >-
      has(params.command) && params.command.matches('(^|[;&|(]\\s*|\\s)(sudo|su|doas)\\s')
  - id: git-force-push
    description: A forced git push rewrites shared history
    severity: warning
    tools: [shell.exec]
    condition: >-
      has(params.command) && params.command.matches(
      'git\\s+push\\b.*' + '(\\s--force\\b|\\s-f\\b|\\s--force-with-lease\\b)')

exceptions:
  - rule: excessive_retries.identical
    owner: sentrail built-in coding-agent policy
    reason: Coding agents re-run the same test and re-read the same file as they work.
    expires: 2099-12-31
  - rule: excessive_retries.mutating
    tool: shell.exec
    owner: sentrail built-in coding-agent policy
    reason: A failing command followed by a different one is debugging, not brute force.
    expires: 2099-12-31
  - rule: excessive_retries.mutating
    tool: files.*
    owner: sentrail built-in coding-agent policy
    reason: Reading and editing several files after a failure is ordinary work.
    expires: 2099-12-31
"""


def hook_policy(path: str | None) -> Policy:
    """The policy at ``path``, else the built-in coding-agent policy."""
    if path:
        return Policy(load_policy(path))
    return Policy(parse_policy(DEFAULT_POLICY_YAML.encode(), "<built-in hook policy>"))
