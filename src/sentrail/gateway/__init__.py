"""The MCP gateway: a stdio proxy that governs an MCP server's tool calls (docs/mcp-gateway.md).

- :mod:`.lines` — newline-delimited framing with a bound on the message size.
- :mod:`.jsonrpc` — parsing (strict: no duplicate keys) and the replies the proxy writes.
- :mod:`.gate` — the decision point with a deadline, fail closed, decisions logged first.
- :mod:`.relay` — what happens to each message: relay unchanged, or intercept ``tools/call``.
- :mod:`.proxy` — the processes: the server as a child, the client on stdin/stdout.
- :mod:`.install` — wrap (and unwrap) the stdio servers of an MCP client's config.

Only :mod:`.jsonrpc` and what imports it need the ``mcp`` extra.
"""
