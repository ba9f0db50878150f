"""Secrets kept out of sight: what looks secret is shown as `•••` unless the user asks.

Three kinds of secret: a backend's `env` values (all of them: env is where people put tokens),
credential headers (`Authorization`, `Cookie`, `X-API-Key`, …), and JSON keys whose names look
secret (`password`, `api_key`, `access_token`, …) anywhere inside a message. Masking makes a copy;
the router itself always forwards and keeps the real values (a replay must send the real password).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "•••"
EMBEDDED_LIMIT = 1 << 20  # longer strings are not searched for JSON inside

# Key names (lower case, without '-', '_', '.' and spaces) that hold a secret whatever comes around them.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "apikey", "privatekey", "credential", "cookie")
_SECRET_NAMES = frozenset(
    {
        "pwd",
        "pass",
        "token",
        "auth",
        "authorization",
        "proxyauthorization",
        "bearer",
        "sessionid",
        "sessiontoken",
        "accesskey",
        "signature",
        "jwt",
        "otp",
    }
)
# Names that end in "token" but are protocol bookkeeping, not secrets.
_NOT_SECRET = frozenset({"progresstoken", "nexttoken", "pagetoken", "nextpagetoken", "cursor", "maxtokens"})
_SEPARATORS = re.compile(r"[-_.\s]")


def _norm(key: str) -> str:
    return _SEPARATORS.sub("", key.lower())


def secret_key(key: str) -> bool:
    """Whether a JSON key or header name looks like it holds a secret."""
    k = _norm(key)
    if not k or k in _NOT_SECRET:
        return False
    if k in _SECRET_NAMES or k.endswith("token") or (k.endswith("key") and ("api" in k or "access" in k)):
        return True
    return any(word in k for word in _SECRET_WORDS)


def mask_value(value: Any) -> Any:
    """A secret's value as shown: strings and numbers masked; empty ones and null left visible
    (that a password is empty is worth seeing); containers masked inside."""
    if isinstance(value, bool) or value is None or value == "":
        return value
    if isinstance(value, str | int | float):
        return MASK
    return mask_json(value, force=True)


def mask_json(value: Any, *, force: bool = False) -> Any:
    """A copy of a JSON value with the values of secret-looking keys masked, at any depth.

    `force`: everything inside is secret (the value of a key such as `credentials`)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if force or (isinstance(k, str) and secret_key(k)):
                out[k] = mask_value(v)
            else:
                out[k] = mask_json(v)
        return out
    if isinstance(value, list):
        return [mask_json(v, force=force) for v in value]
    if force:
        return mask_value(value)
    if isinstance(value, str):
        return _mask_embedded(value)
    return value


def _mask_embedded(text: str) -> str:
    """JSON inside a string (a tool's text content repeats its structured content so): masked too."""
    head = text.lstrip()[:1]
    if head not in ("{", "[") or len(text) > EMBEDDED_LIMIT:
        return text
    try:
        inner = json.loads(text)
    except ValueError:
        return text
    if not has_secrets(inner):
        return text
    return json.dumps(mask_json(inner), indent=2 if "\n" in text else None, ensure_ascii=False)


def has_secrets(value: Any) -> bool:
    """Whether masking would change anything (so a view can offer to reveal)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and secret_key(k) and mask_value(v) != v:
                return True
            if has_secrets(v):
                return True
        return False
    if isinstance(value, list):
        return any(has_secrets(v) for v in value)
    if isinstance(value, str):
        return _mask_embedded(value) is not value
    return False


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if secret_key(k) and v else v) for k, v in headers.items()}


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """Every env value: env is where credentials go, and a name does not say which."""
    return {k: (MASK if v else v) for k, v in env.items()}


def mask_url(url: str) -> str:
    """`https://user:•••@host/path?api_key=•••`: a password in the URL and secret query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep and password else netloc
    query = parts.query
    if query:
        pairs = []
        for part in query.split("&"):
            key, eq, value = part.partition("=")
            pairs.append(f"{key}={MASK}" if eq and value and secret_key(unquote_plus(key)) else part)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_args(args: list[str]) -> list[str]:
    """Command-line arguments with the value of a secret-looking option masked
    (`--token abc`, `--api-key=abc`)."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if secret_key(name):
                if eq:
                    out.append(f"{arg.split('=', 1)[0]}={MASK if value else ''}")
                    continue
                hide_next = True
        out.append(arg)
    return out


def mask_backend(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A backend's snapshot (or config) as shown: env values, credential headers, secrets in its
    URL and command line masked."""
    out = dict(snapshot)
    env = out.get("env")
    if isinstance(env, dict):
        out["env"] = mask_env(env)
    headers = out.get("headers")
    if isinstance(headers, dict):
        out["headers"] = mask_headers(headers)
    for key in ("url", "target"):
        if isinstance(out.get(key), str):
            out[key] = mask_url(out[key])
    args = out.get("args")
    if isinstance(args, list) and all(isinstance(a, str) for a in args):
        out["args"] = mask_args(args)
        if out.get("kind") == "stdio" and isinstance(out.get("target"), str) and out["args"] != args:
            out["target"] = shlex.join([str(out.get("command") or ""), *out["args"]])
    return out
