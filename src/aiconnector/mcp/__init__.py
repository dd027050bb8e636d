"""The MCP endpoint: a lean dual-era Streamable HTTP transport, request auth and the tool registry."""
