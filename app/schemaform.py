"""A form from a JSON Schema: the fields a tool's `inputSchema` (or a prompt's arguments) asks for,
how the text a person typed becomes arguments, and the schema's own validation errors.

Views build one widget per `FormField` (text, number, integer, a switch for booleans, a choice for
enums, JSON text for arrays, objects and anything else) and hand back what was entered; `collect`
turns it into arguments and `validate` checks them against the schema before anything is sent.
This module never imports Textual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import jsonschema

Kind = Literal["string", "number", "integer", "boolean", "enum", "json"]
JSON = dict[str, Any]


@dataclass
class FormField:
    name: str
    kind: Kind
    required: bool = False
    has_default: bool = False
    default: Any = None
    description: str = ""
    choices: list[Any] = field(default_factory=list)
    type_label: str = ""  # what the schema says, short: "integer ≥ 0 ≤ 100", "array of string"

    @property
    def label(self) -> str:
        return f"{self.name} *" if self.required else self.name

    def initial(self) -> Any:
        """The widget's starting value: the default, as text for the text kinds."""
        if self.kind == "boolean":
            return bool(self.default) if self.has_default else False
        if self.kind == "enum":
            return self.default if self.has_default and self.default in self.choices else None
        if not self.has_default or self.default is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default)


def _resolve(schema: Any, root: JSON) -> JSON:
    """Follow a local `$ref` (`#/$defs/X`), and see through `anyOf: [X, {type: null}]`."""
    if not isinstance(schema, dict):
        return {}
    seen = 0
    while "$ref" in schema and isinstance(schema["$ref"], str) and schema["$ref"].startswith("#/") and seen < 20:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            break
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            if len(non_null) == 1:
                inner = _resolve(non_null[0], root)
                return {**inner, **{k: v for k, v in schema.items() if k != key}}
    return cast(JSON, schema)


def _kind(schema: JSON) -> Kind:
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "enum"
    if "const" in schema:
        return "enum"
    t = schema.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        t = non_null[0] if len(non_null) == 1 else None
    if t in ("string", "number", "integer", "boolean"):
        return cast(Kind, t)
    return "json"


def _type_label(schema: JSON, kind: Kind) -> str:
    if kind == "enum":
        return "one of " + ", ".join(json.dumps(c) for c in _choices(schema))
    t = schema.get("type")
    label = t if isinstance(t, str) else ("/".join(t) if isinstance(t, list) else "JSON")
    if label == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
        label = f"array of {schema['items']['type']}"
    bounds = [
        f"{sym} {schema[key]}"
        for key, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in schema
    ]
    if "minLength" in schema:
        bounds.append(f"length ≥ {schema['minLength']}")
    if "maxLength" in schema:
        bounds.append(f"length ≤ {schema['maxLength']}")
    if "format" in schema:
        bounds.append(str(schema["format"]))
    if kind == "json" and (label in ("array", "object", "JSON") or label.startswith("array of")):
        label += " (JSON)"
    return " ".join([label, *bounds])


def _choices(schema: JSON) -> list[Any]:
    if "const" in schema:
        return [schema["const"]]
    return list(schema.get("enum") or [])


def fields_for(schema: Any) -> list[FormField]:
    """The fields of an object schema (a tool's inputSchema), in the schema's order."""
    if not isinstance(schema, dict):
        return []
    props = schema.get("properties")
    if not isinstance(props, dict):
        return []
    required = set(schema.get("required") or [])
    out: list[FormField] = []
    for name, raw in props.items():
        sub = _resolve(raw, schema)
        kind = _kind(sub)
        out.append(
            FormField(
                name=name,
                kind=kind,
                required=name in required,
                has_default="default" in sub,
                default=sub.get("default"),
                description=str(sub.get("description") or sub.get("title") or ""),
                choices=_choices(sub) if kind == "enum" else [],
                type_label=_type_label(sub, kind),
            )
        )
    return out


def prompt_fields(prompt: JSON) -> list[FormField]:
    """A prompt's arguments: strings, some required."""
    out: list[FormField] = []
    for arg in prompt.get("arguments") or []:
        if isinstance(arg, dict) and isinstance(arg.get("name"), str):
            out.append(
                FormField(
                    name=arg["name"],
                    kind="string",
                    required=bool(arg.get("required")),
                    description=str(arg.get("description") or ""),
                    type_label="string",
                )
            )
    return out


def collect(fields: list[FormField], entered: dict[str, Any]) -> tuple[JSON, list[str]]:
    """Arguments from what was entered (text for the text kinds, a bool, a choice or None), and the
    entries that could not be read. An empty entry is "not given"."""
    args: JSON = {}
    errors: list[str] = []
    for f in fields:
        value = entered.get(f.name)
        if f.kind == "boolean":
            args[f.name] = bool(value)
            continue
        if f.kind == "enum":
            if value is not None:
                args[f.name] = value
            continue
        text = "" if value is None else str(value)
        if text.strip() == "":
            continue
        if f.kind == "string":
            args[f.name] = text
        elif f.kind == "integer":
            try:
                args[f.name] = int(text.strip())
            except ValueError:
                errors.append(f"{f.name}: {text.strip()!r} is not an integer")
        elif f.kind == "number":
            try:
                number = float(text.strip())
            except ValueError:
                errors.append(f"{f.name}: {text.strip()!r} is not a number")
                continue
            args[f.name] = (
                int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
            )
        else:
            try:
                args[f.name] = json.loads(text)
            except ValueError as exc:
                errors.append(f"{f.name}: not JSON ({exc.args[0] if exc.args else exc})")
    return args, errors


def validate(schema: Any, args: JSON) -> list[str]:
    """The schema's own validation errors for these arguments, one line each, in path order."""
    if not isinstance(schema, dict) or not schema:
        return []
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"the tool's inputSchema is itself invalid: {exc.message}"]
    errors = sorted(cls(schema).iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
    out: list[str] = []
    for err in errors:
        where = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{where}: {err.message}" if where else err.message)
    return out
