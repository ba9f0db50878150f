"""What a user pastes or runs to point an MCP client at the router (`mcp-router client-config`, the
TUI's "connect a client" key). No Textual here.

- claude-desktop: `claude_desktop_config.json`. Claude Desktop launches stdio servers only, so the
  entry runs the `mcp-remote` bridge (`npx -y mcp-remote URL`).
- claude-code: the `claude mcp add --transport http NAME URL` command.
- cursor: `~/.cursor/mcp.json` (`mcpServers` with a `url`).
- vscode: `.vscode/mcp.json` (`servers` with `"type": "http"`).
- mcp-remote: the `npx -y mcp-remote URL` bridge, for any client that launches stdio servers only.
- inspector: the MCP Inspector's CLI on the backend's `/NAME/mcp` route (it picks its transport
  from the URL's ending, which `/mcp/NAME` does not show).
"""

from __future__ import annotations

import json
import shlex

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "mcp-remote", "inspector")
DEFAULT_ENTRY = "mcp-dev-router"


def client_url(router_url: str, backend: str | None) -> str:
    """The Streamable HTTP URL of one backend (`/mcp/NAME`), or of the default one (`/mcp`)."""
    base = router_url.rstrip("/")
    return f"{base}/mcp/{backend}" if backend else f"{base}/mcp"


def snippets(router_url: str, name: str | None = None, token: str | None = None) -> dict[str, str]:
    """Every client's snippet for backend `name` (None: the default backend), keyed by client.

    `token`, when the router needs one on its MCP routes, goes in an Authorization header.
    """
    url = client_url(router_url, name)
    entry = name or DEFAULT_ENTRY
    auth = f"Bearer {token}" if token else None
    out: dict[str, str] = {}

    # mcp-remote reads `--header Name:value`; the value comes from env so that no argument holds a
    # space (some clients split arguments on spaces).
    bridge: dict[str, object] = {"command": "npx", "args": ["-y", "mcp-remote", url]}
    if auth:
        bridge["args"] = ["-y", "mcp-remote", url, "--header", "Authorization:${MCP_ROUTER_AUTH}"]
        bridge["env"] = {"MCP_ROUTER_AUTH": auth}
    out["claude-desktop"] = json.dumps({"mcpServers": {entry: bridge}}, indent=2)

    argv = ["claude", "mcp", "add", "--transport", "http", entry, url]
    if auth:
        argv += ["--header", f"Authorization: {auth}"]
    out["claude-code"] = shlex.join(argv)

    cursor: dict[str, object] = {"url": url}
    if auth:
        cursor["headers"] = {"Authorization": auth}
    out["cursor"] = json.dumps({"mcpServers": {entry: cursor}}, indent=2)

    vscode: dict[str, object] = {"type": "http", "url": url}
    if auth:
        vscode["headers"] = {"Authorization": auth}
    out["vscode"] = json.dumps({"servers": {entry: vscode}}, indent=2)

    remote = ["npx", "-y", "mcp-remote", url]
    if auth:
        remote += ["--header", f"Authorization:{auth}"]
    out["mcp-remote"] = shlex.join(remote)

    # A backend's route with the name first: the Inspector reads the transport from the ending.
    routed = f"{router_url.rstrip('/')}/{name}/mcp" if name else url
    inspector = ["npx", "@modelcontextprotocol/inspector", "--cli", routed, "--method", "tools/list"]
    if auth:
        inspector += ["--header", f"Authorization: {auth}"]
    out["inspector"] = shlex.join(inspector)
    return out


WHERE = {
    "claude-desktop": "Add to claude_desktop_config.json (Settings → Developer → Edit Config), then restart "
    "Claude Desktop. It starts stdio servers only: npx runs the mcp-remote bridge to the router.",
    "claude-code": "Run in your project:",
    "cursor": "Add to ~/.cursor/mcp.json (or .cursor/mcp.json in the project):",
    "vscode": "Add to .vscode/mcp.json in the workspace:",
    "mcp-remote": "For a client that launches stdio servers only: give it this command (Node.js 18+).",
    "inspector": "Poke at it with the MCP Inspector's CLI (Node.js 22+): --method tools/call --tool-name NAME"
    " --tool-arg key=value calls a tool; --tui and the URL alone open its terminal UI.",
}
