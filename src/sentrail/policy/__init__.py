"""The policy bundle: agent profiles, tool registry, behavioural rules, exceptions."""
