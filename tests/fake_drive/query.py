"""Parsers of the fake: the files.list ``q`` language and multipart/related upload bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .model import ROOT_ID, USER_EMAIL, DriveError, DriveFile, bad_request, parse_date

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>|\(|\))|(?P<word>[A-Za-z_][\w.]*))"
)


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes, str]:
    """(metadata, media, media content type) of a multipart/related upload body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or not m:
        raise bad_request("Multipart upload needs Content-Type multipart/related with a boundary")
    # the line break before each delimiter belongs to it (RFC 2046); googleapiclient's
    # email generator writes bare LF, other clients CRLF: take the style of the first line
    nl = b"\r\n" if body.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    parts = []
    for chunk in (nl + body).split(nl + b"--" + m[1].encode())[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        head, _, data = chunk.partition(nl + nl)
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.decode("latin-1").splitlines())
        )
        parts.append((fields.get("content-type", "application/octet-stream"), data))
    if len(parts) != 2:
        raise bad_request(f"Multipart upload needs 2 parts (metadata, media), got {len(parts)}")
    return json.loads(parts[0][1] or b"{}"), parts[1][1], parts[1][0]


class QueryParser:
    """Recursive-descent parser for the ``q`` language subset; yields a predicate."""

    STRING_FIELDS = ("title", "mimeType", "fullText")
    DATE_FIELDS = ("modifiedDate", "createdDate", "modifiedByMeDate", "lastViewedByMeDate")
    BOOL_FIELDS = ("trashed", "starred", "hidden", "sharedWithMe")

    def __init__(self, text: str, trashed: Callable[[DriveFile], bool]) -> None:
        self.tokens: list[tuple[str, str]] = []
        self.trashed, pos, text = trashed, 0, text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise self.error()
            kind = m.lastgroup or ""
            self.tokens.append((kind, m[kind]))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def error(self) -> DriveError:
        return bad_request("Invalid query", "invalid")

    def peek(self, value: str | None = None) -> bool:
        return self.i < len(self.tokens) and (
            value is None or self.tokens[self.i][1].lower() == value
        )

    def take(self, kind: str | None = None) -> str:
        if self.i >= len(self.tokens) or (kind and self.tokens[self.i][0] != kind):
            raise self.error()
        self.i += 1
        return self.tokens[self.i - 1][1]

    def parse(self) -> Callable[[DriveFile], bool]:
        if not self.tokens:
            return lambda f: True
        pred = self.expr()
        if self.i != len(self.tokens):
            raise self.error()
        return pred

    def expr(self) -> Callable[[DriveFile], bool]:
        terms = [self.term()]
        while self.peek("or"):
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else lambda f: any(t(f) for t in terms)

    def term(self) -> Callable[[DriveFile], bool]:
        factors = [self.factor()]
        while self.peek("and"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else lambda f: all(p(f) for p in factors)

    def factor(self) -> Callable[[DriveFile], bool]:
        if self.peek("not"):
            self.take()
            inner = self.factor()
            return lambda f: not inner(f)
        if self.peek("("):
            self.take()
            inner = self.expr()
            if self.take() != ")":
                raise self.error()
            return inner
        if not self.peek():
            raise self.error()
        if self.tokens[self.i][0] == "str":
            value = _unquote(self.take("str"))
            if self.take("word").lower() != "in":
                raise self.error()
            return self.membership(value, self.take("word"))
        name = self.take("word")
        op = self.take().lower()
        return self.comparison(name, op)

    def membership(self, value: str, name: str) -> Callable[[DriveFile], bool]:
        if name == "parents":
            target = ROOT_ID if value == "root" else value
            return lambda f: target in f.parents
        if name in ("owners", "writers", "readers"):
            mine = value in ("me", USER_EMAIL)
            return lambda f: mine and (name != "owners" or f.drive_id is None)
        raise self.error()

    def comparison(self, name: str, op: str) -> Callable[[DriveFile], bool]:
        if name in self.BOOL_FIELDS:
            word = self.take("word").lower()
            if op not in ("=", "!=") or word not in ("true", "false"):
                raise self.error()
            want = (word == "true") == (op == "=")
            getter: Callable[[DriveFile], bool] = {
                "trashed": self.trashed,
                "starred": lambda f: f.starred,
            }.get(name, lambda f: False)
            return lambda f: getter(f) == want
        value = _unquote(self.take("str"))
        if name in self.DATE_FIELDS and op in ("=", "!=", "<", "<=", ">", ">="):
            when = parse_date(value)
            attr = "created" if name == "createdDate" else "modified"
            compare = _COMPARE[op]
            return lambda f: compare(round(getattr(f, attr), 3), round(when, 3))
        if name not in self.STRING_FIELDS:
            raise self.error()
        if op == "contains" and name == "mimeType":
            return lambda f: value in f.mime_type
        if op == "contains" and name in ("title", "fullText"):
            needle = value.casefold()

            def contains(f: DriveFile) -> bool:  # prefix match at word starts, like Drive
                text = (f.title + " " + (f.description or "")) if name == "fullText" else f.title
                return (
                    re.search(r"(?:^|[^0-9a-z])" + re.escape(needle), text.casefold()) is not None
                )

            return contains
        if op in ("=", "!=") and name != "fullText":
            attr = "title" if name == "title" else "mime_type"
            want = op == "="
            return lambda f: (getattr(f, attr) == value) == want
        raise self.error()


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])
