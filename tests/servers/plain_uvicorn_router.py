"""The router served by uvicorn's own httptools protocol instead of the router's (`app.server_protocol`).

`python -m tests.servers.plain_uvicorn_router` takes the router's arguments. Without the router's
protocol there is no disconnect callback and no abort hook in the scope: the app must fall back to
what any ASGI server offers (tests/test_bounds.py checks that a stalled stream is still handled).
"""

import sys

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

import app.runtime
from app.cli import main

app.runtime.CoalescingHttpToolsProtocol = HttpToolsProtocol  # type: ignore[misc]

sys.exit(main())
