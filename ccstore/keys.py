"""Key rules shared by every backend: validation, joining, and glob patterns.

A key is a '/'-separated path of one or more non-empty segments. The same rule holds on every
backend, so data moves between them unchanged and no key can escape a local store's root.
"""

from __future__ import annotations

import re

from .errors import InvalidKeyError

__all__ = ["TEMP_SUFFIX", "glob_prefix", "glob_regex", "join", "validate_key", "validate_prefix"]

# Local writes go to "<name>.<random>.ccstore-tmp" beside the target and are renamed into place;
# keys may not end their segments with this suffix, so temporary files are never keys.
TEMP_SUFFIX = ".ccstore-tmp"
_MAX_KEY_BYTES = 1024  # S3's limit; enforced everywhere so every backend accepts the same keys


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid key, else raise InvalidKeyError saying why."""
    if not isinstance(key, str):
        raise InvalidKeyError(key, f"keys are str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError(key, "the key is empty")
    if "\x00" in key:
        raise InvalidKeyError(key, "keys may not contain NUL characters")
    if "\\" in key:
        raise InvalidKeyError(key, "keys may not contain backslashes; use '/' to separate parts")
    if key.startswith("/"):
        raise InvalidKeyError(key, "keys are relative; remove the leading '/'")
    if key.endswith("/"):
        raise InvalidKeyError(key, "keys may not end with '/'")
    for segment in key.split("/"):
        if not segment:
            raise InvalidKeyError(key, "keys may not contain empty segments ('//')")
        if segment in (".", ".."):
            raise InvalidKeyError(key, "'.' and '..' segments are not allowed")
        if segment.endswith(TEMP_SUFFIX):
            raise InvalidKeyError(key, f"segments ending in {TEMP_SUFFIX!r} are reserved")
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise InvalidKeyError(key, f"keys are at most {_MAX_KEY_BYTES} bytes of UTF-8")
    return key


def validate_prefix(prefix: str) -> str:
    """Normalise a store prefix: "" or a valid key followed by '/'."""
    prefix = prefix.strip("/") if isinstance(prefix, str) else prefix
    if prefix == "":
        return ""
    return validate_key(prefix) + "/"


def join(prefix: str, key: str) -> str:
    """Join a normalised prefix ("" or ending in '/') and a key."""
    return prefix + key


def glob_prefix(pattern: str) -> str:
    """The literal part of ``pattern`` before its first wildcard, cut back to a '/' boundary."""
    match = re.search(r"[*?\[]", pattern)
    literal = pattern if match is None else pattern[: match.start()]
    return literal[: literal.rfind("/") + 1] if match is not None else literal


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: ``*`` and ``?`` stay within one segment, ``**`` crosses segments."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)
