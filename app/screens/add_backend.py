"""The "add a backend" dialog: a name, then a URL or a command line, checked as the user types.

The form is checked with the core's own rules (`check_name`, `BackendConfig`) plus what only a
person typing needs: `host:port` read as a URL, a name that is already taken, a command
line that does not split, a cwd or watch path that does not exist. Whatever the core still refuses
on submit is shown in the dialog with the core's own words; nothing is added until it accepts.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import ClassVar, Literal
from urllib.parse import urlparse

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, TextArea

from app.control import ControlError, RouterControl
from app.proxy.config import BackendConfig, ConfigError, check_name
from app.proxy.jsonrpc import JSON

Kind = Literal["url", "command"]


@dataclass
class BackendForm:
    """What the user typed, field by field, as typed."""

    name: str = ""
    kind: Kind = "url"
    url: str = ""
    command: str = ""
    cwd: str = ""
    env: str = ""
    watch: str = ""


@dataclass
class Checked:
    """The spec for `add_backend` if the form is valid, else the problems by field (in form order)."""

    spec: JSON | None
    errors: dict[str, str] = field(default_factory=dict)


def normalize_url(text: str) -> str:
    """A target as people type it: `host:port` (or `host:port/path`) means `http://host:port`."""
    text = text.strip()
    if text and "://" not in text:
        return f"http://{text}"
    return text


def parse_env(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines, or one line of `KEY=VALUE` pairs separated by commas."""
    lines = text.splitlines()
    entries = lines if len([ln for ln in lines if ln.strip()]) > 1 else text.replace("\n", " ").split(",")
    env: dict[str, str] = {}
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise ValueError(f"env: {entry!r} is not KEY=VALUE")
        env[key] = value.strip()
    return env


def check_form(form: BackendForm, existing: set[str]) -> Checked:
    errors: dict[str, str] = {}
    name = form.name.strip()
    try:
        check_name(name)
    except ConfigError as exc:
        errors["name"] = "a name is needed" if not name else str(exc)
    else:
        if name in existing:
            errors["name"] = f"a backend named '{name}' already exists"
    spec: JSON = {"name": name}
    if form.kind == "url":
        url = normalize_url(form.url)
        if not url:
            errors["url"] = "a URL is needed (http://host:port/mcp, or host:port)"
        else:
            spec["url"] = url
            try:
                BackendConfig(name="x", url=url)
                _ = urlport(url)
            except (ConfigError, ValueError) as exc:
                errors["url"] = str(exc).replace("backend 'x': ", "")
    else:
        try:
            argv = shlex.split(form.command)
        except ValueError as exc:
            errors["command"] = f"command: {exc}"
            argv = []
        else:
            if not argv:
                errors["command"] = "a command is needed (e.g. python server.py)"
        if argv:
            spec.update(command=argv[0], args=argv[1:])
        cwd = os.path.expanduser(form.cwd.strip())
        if cwd:
            if not os.path.isdir(cwd):
                errors["cwd"] = f"cwd: no directory {cwd!r}"
            spec["cwd"] = cwd
        try:
            spec["env"] = parse_env(form.env)
        except ValueError as exc:
            errors["env"] = str(exc)
        watch = os.path.expanduser(form.watch.strip())
        if watch:
            where = os.path.join(cwd, watch) if cwd and not os.path.isabs(watch) else watch
            if not os.path.exists(where):
                errors["watch"] = f"watch: no file or directory {watch!r}"
            spec["watch"] = [where]
    if errors:
        return Checked(None, errors)
    try:
        BackendConfig.from_dict(spec)
    except ConfigError as exc:
        return Checked(None, {"form": str(exc)})
    return Checked(spec)


def urlport(url: str) -> int | None:
    """The URL's port (raises ValueError, with a message fit to show, if it is not a number)."""
    try:
        return urlparse(url).port
    except ValueError:
        raise ValueError(f"{url!r} has a port that is not a number") from None


FIELD_ORDER = ("name", "url", "command", "cwd", "env", "watch", "form")


class AddBackendDialog(ModalScreen[str | None]):
    """Dismisses with the name of the backend the router added, or None if cancelled."""

    DEFAULT_CSS = """
    AddBackendDialog {
        align: center middle;
    }
    AddBackendDialog > Vertical {
        width: 86;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary 60%;
        background: $surface;
        padding: 0 1;
    }
    AddBackendDialog #add-title {
        text-style: bold;
        padding: 0 1 1 1;
    }
    AddBackendDialog VerticalScroll {
        height: auto;
        max-height: 18;
        padding: 0 1;
    }
    AddBackendDialog .row {
        height: auto;
        margin-bottom: 1;
    }
    AddBackendDialog .field-label {
        width: 13;
        color: $text-muted;
    }
    AddBackendDialog Input, AddBackendDialog TextArea {
        width: 1fr;
        background: $boost;
    }
    AddBackendDialog Input.-invalid, AddBackendDialog TextArea.-invalid {
        background: $error 20%;
    }
    AddBackendDialog TextArea {
        height: 3;
    }
    AddBackendDialog RadioSet {
        layout: horizontal;
        width: 1fr;
        height: auto;
        border: none;
        padding: 0;
        background: transparent;
    }
    AddBackendDialog RadioSet > RadioButton {
        margin-right: 3;
        background: transparent;
    }
    AddBackendDialog .command-only, AddBackendDialog .url-only {
        height: auto;
    }
    AddBackendDialog.-command .url-only, AddBackendDialog.-url .command-only {
        display: none;
    }
    AddBackendDialog .note {
        color: $text-muted;
        padding: 0 0 0 13;
        margin-top: -1;
        margin-bottom: 1;
    }
    AddBackendDialog #add-error {
        width: 1fr;
        min-height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    AddBackendDialog #add-error.-error {
        color: $text-error;
        text-style: bold;
    }
    AddBackendDialog #add-buttons {
        height: auto;
        align-horizontal: right;
        padding: 0 1;
    }
    AddBackendDialog #add-buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    HINT = "enter adds · escape cancels"

    def __init__(self, control: RouterControl) -> None:
        super().__init__(classes="-url")
        self.control = control
        self.existing: set[str] = set()
        self.touched: set[str] = set()
        self.adding = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a backend", id="add-title")
            with VerticalScroll():
                with Horizontal(classes="row"):
                    yield Label("Name", classes="field-label")
                    yield Input(placeholder="letters, digits, - _ . (e.g. weather)", id="name", compact=True)
                with Horizontal(classes="row"):
                    yield Label("Kind", classes="field-label")
                    with RadioSet(id="kind", compact=True):
                        yield RadioButton("URL (HTTP or SSE)", value=True, id="kind-url")
                        yield RadioButton("Command (stdio)", id="kind-command")
                with Horizontal(classes="row url-only"):
                    yield Label("URL", classes="field-label")
                    yield Input(placeholder="http://127.0.0.1:8000/mcp, or host:port", id="url", compact=True)
                with Vertical(classes="command-only"):
                    with Horizontal(classes="row"):
                        yield Label("Command", classes="field-label")
                        yield Input(
                            placeholder="python server.py --flag (split like a shell)", id="command", compact=True
                        )
                    with Horizontal(classes="row"):
                        yield Label("Directory", classes="field-label")
                        yield Input(placeholder="optional; the router's own if empty", id="cwd", compact=True)
                    with Horizontal(classes="row"):
                        yield Label("Environment", classes="field-label")
                        yield TextArea(
                            id="env", soft_wrap=True, compact=True, placeholder="optional: KEY=VALUE lines, or A=1, B=2"
                        )
                    with Horizontal(classes="row"):
                        yield Label("Watch path", classes="field-label")
                        yield Input(
                            placeholder="optional: restart when files under it change", id="watch", compact=True
                        )
            yield Label(self.HINT, id="add-error", markup=False)
            with Horizontal(id="add-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Add", id="add", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()
        self.run_worker(self._load_names(), group="names")

    async def _load_names(self) -> None:
        try:
            status = await self.control.status()
        except ControlError:
            return
        self.existing = {str(b.get("name")) for b in status.get("backends", [])}
        self._check()

    # ------------------------------------------------------------------ the form
    @property
    def kind(self) -> Kind:
        return "command" if self.query_one("#kind-command", RadioButton).value else "url"

    def form(self) -> BackendForm:
        def text(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value

        return BackendForm(
            name=text("name"),
            kind=self.kind,
            url=text("url"),
            command=text("command"),
            cwd=text("cwd"),
            env=self.query_one("#env", TextArea).text,
            watch=text("watch"),
        )

    def _check(self, *, everything: bool = False) -> Checked:
        """Check the form; show the first problem among the fields touched so far (all on submit)."""
        checked = check_form(self.form(), self.existing)
        shown = {f: m for f, m in checked.errors.items() if everything or f in self.touched or f == "form"}
        for wid in ("name", "url", "command", "cwd", "watch"):
            self.query_one(f"#{wid}", Input).set_class(wid in shown, "-invalid")
        self.query_one("#env", TextArea).set_class("env" in shown, "-invalid")
        first = next((shown[f] for f in FIELD_ORDER if f in shown), None)
        self.show_error(first)
        return checked

    def show_error(self, message: str | None) -> None:
        label = self.query_one("#add-error", Label)
        label.update(message or self.HINT)
        label.set_class(message is not None, "-error")

    @property
    def error_text(self) -> str:
        """The line under the form: the problem shown, or the hint."""
        return str(self.query_one("#add-error", Label).content)

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id:
            self.touched.add(event.input.id)
        self._check()

    @on(TextArea.Changed)
    def _env_changed(self, _event: TextArea.Changed) -> None:
        self.touched.add("env")
        self._check()

    @on(RadioSet.Changed)
    def _kind_changed(self, _event: RadioSet.Changed) -> None:
        kind = self.kind
        self.set_class(kind == "url", "-url")
        self.set_class(kind == "command", "-command")
        self._check()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_add()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "add":
            self.action_add()
        else:
            self.action_cancel()

    # ------------------------------------------------------------------ actions
    def action_add(self) -> None:
        if self.adding:
            return
        checked = self._check(everything=True)
        if checked.spec is None:
            return
        self.adding = True
        self.query_one("#add", Button).disabled = True
        self.show_error(None)
        self.query_one("#add-error", Label).update(f"adding '{checked.spec['name']}'…")
        self.run_worker(self._add(checked.spec), group="add", exclusive=True)

    async def _add(self, spec: JSON) -> None:
        try:
            snap = await self.control.add_backend(spec)
        except ControlError as exc:
            if "already exists" in exc.message:
                self.existing.add(str(spec["name"]))
            self.show_error(exc.message)
            return
        finally:
            self.adding = False
            self.query_one("#add", Button).disabled = False
        self.dismiss(str(snap.get("name", spec["name"])))

    def action_cancel(self) -> None:
        self.dismiss(None)
