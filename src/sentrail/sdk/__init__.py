"""The Python SDK: guard tool functions with a decision point (docs/sdk.md).

- :mod:`.guard` — ``@guard``, ``GuardedCall``, ``run_context``, ``ToolDenied``: no framework.
- :mod:`.openai_agents` — OpenAI Agents SDK tool guardrails (extra ``openai-agents``).
- :mod:`.langchain` — LangChain guarded tools and callback handler (extra ``langchain``).

Only :mod:`.guard` is imported here: the adapters import their framework, so import them
by name when it is installed.
"""

from sentrail.sdk.guard import (
    GuardContext,
    GuardedCall,
    GuardError,
    ToolDenied,
    current_run,
    guard,
    run_context,
)

__all__ = [
    "GuardContext",
    "GuardError",
    "GuardedCall",
    "ToolDenied",
    "current_run",
    "guard",
    "run_context",
]
