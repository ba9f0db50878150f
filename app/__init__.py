"""mcp-dev-router: a development router for MCP servers."""

__version__ = "0.1.0"
