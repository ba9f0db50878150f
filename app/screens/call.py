"""Try a tool (or read a resource, or get a prompt) from a form generated from its schema.

Strings, numbers and integers are text inputs, booleans a switch, enums a choice, arrays, objects
and anything else JSON text. Defaults are filled in, required fields marked `*`. On send the
schema's own validation errors are shown and nothing is sent until they are fixed; the answer is
shown as the client would see it (app.results). The call goes through the router on a session of
its own (RouterControl.call), so it appears in the trace as the router's.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch, TextArea

from app.control import ControlError, RouterControl
from app.proxy.secrets import secret_key
from app.results import Block, result_blocks
from app.schemaform import FormField, collect, fields_for, prompt_fields, validate
from app.widgets.footer import SteadyFooter

ItemKind = Literal["tool", "resource", "prompt"]
BLOCK_STYLE = {
    "heading": "bold underline",
    "text": "",
    "json": "",
    "media": "italic cyan",
    "error": "bold white on dark_red",
    "note": "dim italic",
}


def render_blocks(blocks: list[Block]) -> Text:
    text = Text()
    for n, block in enumerate(blocks):
        if n:
            text.append("\n")
        text.append(block.text, style=BLOCK_STYLE[block.kind])
    return text


class CallScreen(Screen[None]):
    DEFAULT_CSS = """
    CallScreen #call-title { padding: 0 1; text-style: bold; }
    CallScreen #call-description { padding: 0 1; color: $text-muted; height: auto; }
    CallScreen #call-form { height: auto; max-height: 65%; padding: 0 1; }
    CallScreen .field { height: auto; margin-bottom: 1; }
    CallScreen .field-name { width: 34; height: auto; }
    CallScreen .field-input { width: 1fr; height: auto; }
    CallScreen .field-label { text-style: bold; }
    CallScreen .field-label.required { color: $warning; }
    CallScreen .field-type { color: $text-muted; }
    CallScreen .field-hint { color: $text-muted; height: auto; }
    CallScreen .field TextArea { height: 3; }
    CallScreen #call-errors { color: $error; height: auto; padding: 0 1; display: none; }
    CallScreen #call-errors.shown { display: block; }
    CallScreen #call-buttons { height: auto; padding: 0 1; }
    CallScreen #call-result { height: 1fr; border: round $primary-darken-1; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "send", "Send"),
        Binding("ctrl+r", "reveal", "Reveal secrets"),
    ]

    def __init__(self, control: RouterControl | None, backend: str, kind: ItemKind, item: dict[str, Any]) -> None:
        super().__init__()
        self.control = control
        self.backend = backend
        self.kind = kind
        self.item = item
        if kind == "tool":
            self.fields = fields_for(item.get("inputSchema"))
        elif kind == "prompt":
            self.fields = prompt_fields(item)
        else:
            self.fields = []
        self.errors: list[str] = []
        self.outcome: dict[str, Any] | None = None
        self.reveal = False
        self.sent: dict[str, Any] | None = None  # the params of the last request sent

    @property
    def method(self) -> str:
        return {"tool": "tools/call", "resource": "resources/read", "prompt": "prompts/get"}[self.kind]

    @property
    def item_name(self) -> str:
        return str(self.item.get("name") if self.kind != "resource" else self.item.get("uri"))

    def compose(self) -> ComposeResult:
        verb = {"tool": "Call tool", "resource": "Read resource", "prompt": "Get prompt"}[self.kind]
        yield Label(f"{verb} {self.item_name} on {self.backend}", id="call-title")
        description = self.item.get("description") or self.item.get("title") or ""
        if description:
            yield Static(str(description), id="call-description")
        with VerticalScroll(id="call-form"):
            if not self.fields:
                yield Static("No arguments." if self.kind != "resource" else str(self.item.get("mimeType") or ""))
            for i, f in enumerate(self.fields):
                with Horizontal(classes="field"):
                    with Vertical(classes="field-name"):
                        label = Label(f.label, classes="field-label")
                        label.set_class(f.required, "required")
                        yield label
                        yield Static(f.type_label, classes="field-type")
                    with Vertical(classes="field-input"):
                        yield self._widget(i, f)
                        if f.description and f.description.lower() != f.name.lower():
                            yield Static(f.description, classes="field-hint")
        yield Static(id="call-errors")
        with Horizontal(id="call-buttons"):
            yield Button({"tool": "Call", "resource": "Read", "prompt": "Get"}[self.kind], id="send", variant="primary")
        with VerticalScroll(id="call-result"):
            yield Static("", id="call-result-text")
        yield SteadyFooter()

    def _widget(self, i: int, f: FormField) -> Widget:
        wid = f"field-{i}"
        initial = f.initial()
        if f.kind == "boolean":
            return Switch(value=bool(initial), id=wid)
        if f.kind == "enum":
            options = [(c if isinstance(c, str) else json.dumps(c), c) for c in f.choices]
            if initial is None:
                return Select(options, id=wid, allow_blank=True, compact=True)
            return Select(options, id=wid, value=initial, allow_blank=not f.required, compact=True)
        if f.kind == "json":
            return TextArea(str(initial), id=wid, soft_wrap=True, placeholder=f.type_label, compact=True)
        input_type: Any = {"integer": "integer", "number": "number"}.get(f.kind, "text")
        return Input(
            str(initial), id=wid, type=input_type, password=secret_key(f.name), placeholder=f.type_label, compact=True
        )

    def entered(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for i, f in enumerate(self.fields):
            w = self.query_one(f"#field-{i}")
            if isinstance(w, Switch):
                values[f.name] = w.value
            elif isinstance(w, Select):
                values[f.name] = None if w.value is Select.BLANK else w.value
            elif isinstance(w, TextArea):
                values[f.name] = w.text
            elif isinstance(w, Input):
                values[f.name] = w.value
        return values

    def params(self) -> tuple[dict[str, Any], list[str]]:
        """The request's params and the errors that keep it from being sent."""
        if self.kind == "resource":
            return {"uri": self.item_name}, []
        args, errors = collect(self.fields, self.entered())
        if not errors:
            if self.kind == "tool":
                errors = validate(self.item.get("inputSchema"), args)
            else:
                missing = [f.name for f in self.fields if f.required and f.name not in args]
                errors = [f"{name}: required" for name in missing]
        return {"name": self.item_name, "arguments": args}, errors

    def _show_errors(self, errors: list[str]) -> None:
        self.errors = errors
        box = self.query_one("#call-errors", Static)
        box.set_class(bool(errors), "shown")
        box.update("\n".join(f"✗ {e}" for e in errors))

    @on(Button.Pressed, "#send")
    def _pressed(self) -> None:
        self.action_send()

    def action_send(self) -> None:
        params, errors = self.params()
        self._show_errors(errors)
        if errors:
            self.query_one("#call-result-text", Static).update(Text("Not sent: fix the fields above.", style="dim"))
            return
        if self.control is None:
            self.query_one("#call-result-text", Static).update("No router to send to (a trace file is open).")
            return
        self.sent = params
        self.query_one("#call-result-text", Static).update("sending…")
        self.run_worker(self._send(params), exclusive=True, group="call")

    async def _send(self, params: dict[str, Any]) -> None:
        assert self.control is not None
        try:
            self.outcome = await self.control.call(self.backend, self.method, params)
        except ControlError as exc:
            self.outcome = {"response": None, "error": exc.message}
        self._show_result()

    def _show_result(self) -> None:
        if self.outcome is not None:
            blocks = result_blocks(self.method, self.outcome, reveal=self.reveal)
            self.query_one("#call-result-text", Static).update(render_blocks(blocks))

    def action_reveal(self) -> None:
        self.reveal = not self.reveal
        self._show_result()
