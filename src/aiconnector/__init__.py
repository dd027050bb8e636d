"""AI Connector: an MCP server that lets AI agents work on a content site under scoped,
revocable, audited connections."""

__version__ = "0.1.0"
SERVER_NAME = "AI Connector"
