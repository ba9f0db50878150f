"""Conformance fixture backend for the official MCP conformance suite (server scenarios).

Built on the official Python SDK (`mcp` 2.x, `MCPServer`) and served over streamable HTTP on
127.0.0.1 at `/mcp`. One endpoint speaks both eras: the handshake era (`initialize`, sessions,
2025-11-25 and earlier) and the modern era (2026-07-28: self-contained requests,
`server/discover`, `InputRequiredResult`, `subscriptions/listen`).

The tool, resource and prompt names and payloads are the ones the suite's scenario
descriptions ask for (`conformance server --help`, `conformance list`), e.g. `test_simple_text`,
`test://static-text`, `test_prompt_with_arguments`.

    python tests/conformance/server.py --port 3001
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
from typing import Annotated, Any

import anyio
import mcp.types as types
import uvicorn
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field

logger = logging.getLogger("conformance-fixture")

MODERN = "2026-07-28"

# A 1x1 PNG and a minimal WAV header: the suite only checks type, mime type and base64-ness.
TEST_IMAGE_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# The exact inputSchema the `json-schema-2020-12` scenario compares against.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


class InMemoryEventStore(EventStore):
    """Event store so that SSE streams are resumable (`Last-Event-ID`, SEP-1699 polling)."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, types.JSONRPCMessage | None]] = []
        self._counter = 0

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        self._counter += 1
        event_id = str(self._counter)
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream_id = next((s for s, e, _ in self._events if e == last_event_id), None)
        if stream_id is None:
            return None
        after = int(last_event_id)
        for s, e, message in self._events:
            # Priming events (message None) are markers only, never replayed.
            if s == stream_id and int(e) > after and message is not None:
                await send_callback(EventMessage(message, e))
        return stream_id


def _text(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


def _is_modern(ctx: Context) -> bool:
    return ctx.protocol_version == MODERN


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _elicit(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest.model_validate(
        {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}
    )


def _sample(prompt: str, max_tokens: int) -> types.CreateMessageRequest:
    return types.CreateMessageRequest.model_validate(
        {
            "method": "sampling/createMessage",
            "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                "maxTokens": max_tokens,
            },
        }
    )


def _roots() -> types.ListRootsRequest:
    return types.ListRootsRequest.model_validate({"method": "roots/list", "params": {}})


def _input_required(requests: dict[str, Any], state: str | None = None) -> types.InputRequiredResult:
    # The SDK's RequestStateBoundary seals `request_state` on the way out and verifies it on
    # the way back, so tampered state is rejected with -32602 before the handler runs.
    return types.InputRequiredResult(input_requests=requests, request_state=state)


def _response(ctx: Context, key: str) -> dict[str, Any] | None:
    """The client's answer to input request `key`, as plain JSON, or None."""
    responses = ctx.input_responses or {}
    answer = responses.get(key)
    if answer is None:
        return None
    if isinstance(answer, BaseModel):
        return answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    return answer if isinstance(answer, dict) else None


def _content(answer: dict[str, Any] | None) -> dict[str, Any]:
    content = (answer or {}).get("content")
    return content if isinstance(content, dict) else {}


def build_server() -> MCPServer:
    hint = CacheHint(ttl_ms=0, scope="private")
    mcp: MCPServer = MCPServer(
        name="mcp-conformance-test-server",
        version="1.0.0",
        # SEP-2549 (`caching` scenario): every cacheable result carries ttlMs/cacheScope.
        cache_hints={
            "tools/list": hint,
            "prompts/list": hint,
            "resources/list": hint,
            "resources/templates/list": hint,
            "resources/read": hint,
        },
    )

    # ---------------------------------------------------------------- tools: content types
    @mcp.tool(description="Tests simple text content response")
    def test_simple_text() -> types.CallToolResult:
        return _text("This is a simple text response for testing.")

    @mcp.tool(description="Tests image content response")
    def test_image_content() -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")]
        )

    @mcp.tool(description="Tests audio content response")
    def test_audio_content() -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.AudioContent(type="audio", data=TEST_AUDIO_BASE64, mime_type="audio/wav")]
        )

    @mcp.tool(description="Tests embedded resource content response")
    def test_embedded_resource() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])

    @mcp.tool(description="Tests response with multiple content types (text, image, resource)")
    def test_multiple_content_types() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text="Multiple content types test:"),
                types.ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png"),
                types.EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @mcp.tool(description="Tests error response handling")
    def test_error_handling() -> types.CallToolResult:
        return _text("This tool intentionally returns an error for testing", is_error=True)

    # ---------------------------------------------------------------- tools: notifications
    @mcp.tool(description="Tests tool that emits log messages during execution")
    async def test_tool_with_logging(ctx: Context) -> types.CallToolResult:
        for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await anyio.sleep(0.05)
            await ctx.info(message)
        return _text("Tool with logging executed successfully")

    @mcp.tool(description="Tests tool that reports progress notifications")
    async def test_tool_with_progress(ctx: Context) -> types.CallToolResult:
        for step in (0, 50, 100):
            if step:
                await anyio.sleep(0.05)
            await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        return _text("Progress test completed")

    @mcp.tool(description="Tests SSE polling by closing the stream mid-call (SEP-1699)")
    async def test_reconnection(ctx: Context) -> types.CallToolResult:
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        # Give the client time to reconnect with Last-Event-ID before the result is stored.
        await anyio.sleep(0.2)
        await ctx.info("After reconnect")
        return _text("Reconnection test completed")

    # ---------------------------------------------------------------- tools: client requests
    # Handshake era: real server-to-client requests. Modern era: an InputRequiredResult.
    class UserResponse(BaseModel):
        username: str = Field(description="User's response")
        email: str = Field(description="User's email address")

    @mcp.tool(description="Tests server-initiated sampling (LLM completion request)")
    async def test_sampling(prompt: str, ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        if _is_modern(ctx):
            answer = _response(ctx, "sampling")
            if answer is None:
                return _input_required({"sampling": _sample(prompt, 100)})
            return _text(f"LLM response: {_content(answer).get('text', '')}")
        result = await ctx.session.create_message(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = content.text if isinstance(content, types.TextContent) else "No response"
        return _text(f"LLM response: {text}")

    async def _elicit_tool(
        ctx: Context, key: str, message: str, model: type[BaseModel], prefix: str
    ) -> types.CallToolResult | types.InputRequiredResult:
        if _is_modern(ctx):
            answer = _response(ctx, key)
            if answer is None:
                schema = model.model_json_schema()
                return _input_required(
                    {key: _elicit(message, _schema(schema["properties"], schema.get("required", [])))}
                )
            action = answer.get("action", "accept")
            return _text(f"{prefix}: action={action}, content={json.dumps(answer.get('content') or {})}")
        result = await ctx.elicit(message=message, schema=model)
        content = result.data.model_dump_json() if result.action == "accept" else "{}"
        return _text(f"{prefix}: action={result.action}, content={content}")

    @mcp.tool(description="Tests server-initiated elicitation (user input request)")
    async def test_elicitation(message: str, ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        return await _elicit_tool(ctx, "user_response", message, UserResponse, "User response")

    class DefaultsSchema(BaseModel):
        name: str = Field(default="John Doe", description="User name")
        age: int = Field(default=30, description="User age")
        score: float = Field(default=95.5, description="User score")
        status: str = Field(
            default="active",
            description="User status",
            json_schema_extra={"enum": ["active", "inactive", "pending"]},
        )
        verified: bool = Field(default=True, description="Verification status")

    @mcp.tool(description="Tests elicitation with default values for all primitive types (SEP-1034)")
    async def test_elicitation_sep1034_defaults(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        return await _elicit_tool(
            ctx, "defaults", "Please provide user information", DefaultsSchema, "Elicitation completed"
        )

    class EnumsSchema(BaseModel):
        untitledSingle: str = Field(
            description="Simple enum without titles",
            json_schema_extra={"enum": ["option1", "option2", "option3"]},
        )
        titledSingle: str = Field(
            description="Enum with titled options (oneOf)",
            json_schema_extra={
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ]
            },
        )
        legacyEnum: str = Field(
            description="Legacy enum with enumNames",
            json_schema_extra={
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
        )
        untitledMulti: list[str] = Field(
            description="Multi-select without titles",
            json_schema_extra={"items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        )
        titledMulti: list[str] = Field(
            description="Multi-select with titled options",
            json_schema_extra={
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                }
            },
        )

    @mcp.tool(description="Tests elicitation with enum schema variations (SEP-1330)")
    async def test_elicitation_sep1330_enums(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        return await _elicit_tool(
            ctx,
            "enums",
            "Please select values using different enum schema types",
            EnumsSchema,
            "Elicitation completed",
        )

    # ---------------------------------------------------------------- tools: SEP-2322 (MRTR)
    @mcp.tool(description="MRTR: asks for the caller's name via an in-band elicitation request")
    async def test_input_required_result_elicitation(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        name = _content(_response(ctx, "user_name")).get("name")
        if not isinstance(name, str):
            # Missing, wrong or malformed answers: ask again rather than fail (SEP-2322 SHOULD).
            return _input_required(
                {"user_name": _elicit("What is your name?", _schema({"name": {"type": "string"}}, ["name"]))}
            )
        return _text(f"Hello, {name}!")

    @mcp.tool(description="MRTR: asks the client's LLM a question via an in-band sampling request")
    async def test_input_required_result_sampling(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        answer = _response(ctx, "capital_question")
        if answer is None:
            return _input_required({"capital_question": _sample("What is the capital of France?", 100)})
        return _text(f"Sampling result: {_content(answer).get('text', '')}")

    @mcp.tool(description="MRTR: asks for the client's roots via an in-band roots/list request")
    async def test_input_required_result_list_roots(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        answer = _response(ctx, "client_roots")
        if answer is None:
            return _input_required({"client_roots": _roots()})
        roots = answer.get("roots") or []
        uris = ", ".join(str(r.get("uri")) for r in roots if isinstance(r, dict))
        return _text(f"Found {len(roots)} root(s): {uris}")

    @mcp.tool(description="MRTR: round-trips an opaque requestState")
    async def test_input_required_result_request_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        answer = _response(ctx, "confirm")
        if answer is None or ctx.request_state != "confirm-round-1":
            return _input_required(
                {"confirm": _elicit("Please confirm", _schema({"ok": {"type": "boolean"}}, ["ok"]))},
                "confirm-round-1",
            )
        return _text(f"state-ok: confirmed={_content(answer).get('ok')}")

    @mcp.tool(description="MRTR: asks for elicitation, sampling and roots in one round")
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        keys = ("user_name", "greeting", "client_roots")
        if ctx.request_state != "multi-round-1" or any(_response(ctx, k) is None for k in keys):
            return _input_required(
                {
                    "user_name": _elicit("What is your name?", _schema({"name": {"type": "string"}}, ["name"])),
                    "greeting": _sample("Generate a greeting", 50),
                    "client_roots": _roots(),
                },
                "multi-round-1",
            )
        name = _content(_response(ctx, "user_name")).get("name")
        greeting = _content(_response(ctx, "greeting")).get("text")
        roots = (_response(ctx, "client_roots") or {}).get("roots") or []
        return _text(f"name={name}, greeting={greeting}, roots={len(roots)}")

    @mcp.tool(description="MRTR: two rounds of elicitation with evolving requestState")
    async def test_input_required_result_multi_round(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        state = ctx.request_state
        if state and state.startswith("round-2:") and (color := _content(_response(ctx, "step2")).get("color")):
            return _text(f"Done: name={state.removeprefix('round-2:')}, color={color}")
        name = _content(_response(ctx, "step1")).get("name")
        if state == "round-1" and isinstance(name, str):
            return _input_required(
                {
                    "step2": _elicit(
                        "Step 2: What is your favorite color?",
                        _schema({"color": {"type": "string"}}, ["color"]),
                    )
                },
                f"round-2:{name}",
            )
        return _input_required(
            {"step1": _elicit("Step 1: What is your name?", _schema({"name": {"type": "string"}}, ["name"]))},
            "round-1",
        )

    @mcp.tool(description="MRTR: integrity-protected requestState (tampering is rejected)")
    async def test_input_required_result_tampered_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        if ctx.request_state == "tamper-check" and _response(ctx, "confirm") is not None:
            return _text("state verified")
        return _input_required(
            {"confirm": _elicit("Please confirm", _schema({"ok": {"type": "boolean"}}, ["ok"]))},
            "tamper-check",
        )

    @mcp.tool(description="MRTR: only asks for what the client declared it supports")
    async def test_input_required_result_capabilities(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        caps = ctx.client_capabilities
        if ctx.input_responses:
            return _text("capabilities respected")
        requests: dict[str, Any] = {}
        if caps is not None and caps.sampling is not None:
            requests["sample"] = _sample("Say hello", 20)
        if caps is not None and caps.elicitation is not None:
            requests["ask"] = _elicit("What is your name?", _schema({"name": {"type": "string"}}, ["name"]))
        if caps is not None and caps.roots is not None:
            requests["roots"] = _roots()
        if not requests:
            return _text("client declared no capability to ask through")
        return _input_required(requests)

    # ---------------------------------------------------------------- tools: modern-era misc
    @mcp.tool(description="Requires the sampling client capability (SEP-2575 -32021 check)")
    async def test_missing_capability(ctx: Context) -> types.CallToolResult:
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=-32021,
                message="Missing required client capability: sampling",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return _text("client declared sampling")

    @mcp.tool(description="Echoes a value that is mirrored in the Mcp-Param-Region header (SEP-2243)")
    def test_headers(
        region: Annotated[str, Field(description="Region to echo", json_schema_extra={"x-mcp-header": "Region"})],
    ) -> types.CallToolResult:
        return _text(f"region={region}")

    @mcp.tool(description="Tool with JSON Schema 2020-12 features")
    def json_schema_2020_12_tool() -> types.CallToolResult:
        return _text("ok")

    # MCPServer derives inputSchema from the signature; the scenario wants its own schema
    # verbatim, so replace the advertised one (the body ignores its arguments anyway).
    schema_tool = mcp._tool_manager.get_tool("json_schema_2020_12_tool")  # pyright: ignore[reportPrivateUsage]
    assert schema_tool is not None
    schema_tool.parameters = JSON_SCHEMA_2020_12

    @mcp.tool(description="Adds a tool so that listen streams see tools list_changed (SEP-2575)")
    async def test_trigger_tool_change(ctx: Context) -> types.CallToolResult:
        if mcp._tool_manager.get_tool("test_added_tool") is None:  # pyright: ignore[reportPrivateUsage]
            mcp.add_tool(lambda: "added", name="test_added_tool", description="Added at runtime")
        await ctx.notify_tools_changed()
        return _text("tool list changed")

    @mcp.tool(description="Adds a prompt so that listen streams see prompts list_changed (SEP-2575)")
    async def test_trigger_prompt_change(ctx: Context) -> types.CallToolResult:
        names = {p.name for p in await mcp.list_prompts()}
        if "test_added_prompt" not in names:
            mcp.prompt(name="test_added_prompt", description="Added at runtime")(lambda: "added")
        await ctx.notify_prompts_changed()
        return _text("prompt list changed")

    # ---------------------------------------------------------------- resources
    @mcp.resource("test://static-text", mime_type="text/plain", description="A static text resource for testing")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", mime_type="image/png", description="A static binary resource for testing")
    def static_binary() -> bytes:
        return base64.b64decode(TEST_IMAGE_BASE64)

    @mcp.resource(
        "test://template/{id}/data",
        mime_type="application/json",
        description="A resource template with parameter substitution",
    )
    def template(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @mcp.resource("test://watched-resource", mime_type="text/plain", description="A resource for subscriptions")
    def watched() -> str:
        return "Watched resource content"

    subscriptions: set[str] = set()

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscriptions.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        subscriptions.discard(str(params.uri))
        return types.EmptyResult()

    async def set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    lowlevel = mcp._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)

    # ---------------------------------------------------------------- prompts
    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage(types.TextContent(type="text", text="This is a simple prompt for testing."))]

    @mcp.prompt(description="A prompt with required arguments")
    def test_prompt_with_arguments(
        arg1: Annotated[str, Field(description="First test argument")],
        arg2: Annotated[str, Field(description="Second test argument")],
    ) -> list[UserMessage]:
        text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [UserMessage(types.TextContent(type="text", text=text))]

    @mcp.prompt(description="A prompt that includes an embedded resource")
    def test_prompt_with_embedded_resource(
        resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
    ) -> list[UserMessage]:
        resource = types.TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(types.EmbeddedResource(type="resource", resource=resource)),
            UserMessage(types.TextContent(type="text", text="Please process the embedded resource above.")),
        ]

    @mcp.prompt(description="A prompt that includes image content")
    def test_prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(types.ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")),
            UserMessage(types.TextContent(type="text", text="Please analyze the image above.")),
        ]

    @mcp.prompt(description="MRTR on prompts/get: asks for context before rendering")
    def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | types.InputRequiredResult:
        context = _content(_response(ctx, "user_context")).get("context")
        if not isinstance(context, str):
            return _input_required(
                {
                    "user_context": _elicit(
                        "What context should the prompt use?",
                        _schema({"context": {"type": "string"}}, ["context"]),
                    )
                }
            )
        return [UserMessage(types.TextContent(type="text", text=f"Prompt rendered with context: {context}"))]

    @mcp.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK leaves it untyped
    async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion:
        # Minimal on purpose: the scenario checks the capability and the response shape.
        return types.Completion(values=[], total=0, has_more=False)

    return mcp


async def serve(host: str, port: int) -> None:
    mcp = build_server()
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        event_store=InMemoryEventStore(),
        # SEP-1699: the priming event tells clients to come back quickly after a closed stream.
        retry_interval=100,
        host=host,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
