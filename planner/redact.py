"""Secrets kept out of every output, log line and file: credentials in URLs, API keys and headers given as options.

Errors name the URLs they failed on, and the resume hint repeats the command line, so both pass through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

MASK = "<redacted>"
# user:password@ (or user@) in any URL-like text
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# Options whose value is a secret, and KEY=VALUE option values whose key is.
SECRET_FLAGS = ("--api-key",)
SECRET_KEYS = frozenset({"api_key", "headers", "authorization", "password", "token"})


def redact_url(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by the mask."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line safe to print: secret option values, secret KEY=VALUE values (also as
    `--option=KEY=VALUE`) and URL credentials masked."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, sep, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            if sep:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        prefix = f"{flag}=" if flag.startswith("--") and sep else ""
        key, sep, _ = (value if prefix else arg).partition("=")
        if sep and key.strip().lower() in SECRET_KEYS:
            out.append(f"{prefix}{key}={MASK}")
            continue
        out.append(redact_url(arg))
    return out


def secret_values(argv: Sequence[str]) -> list[str]:
    """The secret values given on a command line: after a secret flag, and in secret KEY=VALUE options (each
    string inside a JSON value too, e.g. every header of headers={...})."""
    found: list[str] = []
    for i, arg in enumerate(argv):
        flag, sep, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            found.append(value if sep else (argv[i + 1] if i + 1 < len(argv) else ""))
            continue
        key, sep, raw = (value if flag.startswith("--") and sep else arg).partition("=")
        if sep and key.strip().lower() in SECRET_KEYS:
            found += [raw, *_strings(raw)]
    return [s for s in found if s]


def _strings(raw: str) -> list[str]:
    """Every string inside a JSON text (none when it is not JSON)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return []
    stack, found = [data], []
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
    return found


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with URL credentials and each of `secrets` (longer than 3 characters) masked."""
    text = redact_url(text)
    for secret in secrets:
        if secret and len(secret) > 3:
            text = text.replace(secret, MASK)
    return text
