"""ListObjectsV2 result documents, parsed for the fields ccstore uses.

botocore's parser builds every field of every object (dates included): most of a listing's
CPU. ``parse_listing`` reads keys, common prefixes and the continuation fields only. The usual
document, as S3 servers write it (no namespace prefixes, CDATA, comments or DTD), is scanned
with regular expressions, and accepted only if every ``Contents`` yielded one key and every
``CommonPrefixes`` one prefix; anything else goes through ElementTree, 15x slower.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

__all__ = ["parse_listing"]

_ROOT = re.compile(rb'\s*(?:<\?xml[^>]*\?>\s*)?<ListBucketResult(?:\s+xmlns="[^"<>]*")?\s*>')
# "<!" opens CDATA, comments and DTDs; "xmlns:" declares a prefix that tags may use; expat
# turns "\r\n" in text into "\n": such documents take the ElementTree path
_UNUSUAL = (b"<!", b"xmlns:", b"\r")
_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>\s*</CommonPrefixes>")
_TRUNCATED = re.compile(rb"<IsTruncated>([^<]*)</IsTruncated>")
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_ENCODING = re.compile(rb"<EncodingType>([^<]*)</EncodingType>")
_REFERENCE = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
# an element opening: its name, then whitespace (attributes), "/>" or ">"
_OPENING = {
    name: re.compile(b"<" + name + rb"[\s/>]")
    for name in (
        b"Key", b"Contents", b"CommonPrefixes", b"IsTruncated", b"NextContinuationToken",
        b"EncodingType",
    )
}  # fmt: skip
_ENCODED_LINE_BREAK = re.compile(rb"%0[aA]")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def parse_listing(document: bytes) -> dict[str, Any] | None:
    """A ListBucketResult document as the client's ``list_objects_v2`` returns it (``Contents``
    keys, ``CommonPrefixes``, ``IsTruncated``, ``NextContinuationToken``); None if it is not
    one. Keys the server percent-encoded (``EncodingType`` url: XML 1.0 cannot carry every
    character a key may hold) are decoded as botocore decodes them."""
    try:
        scanned = _scan(document)
    except ValueError:  # an entity XML does not define: not well-formed, let expat say so
        scanned = None
    return scanned if scanned is not None else _parse_tree(document)


def _scan(document: bytes) -> dict[str, Any] | None:
    if (
        not _ROOT.match(document)
        or not document.rstrip().endswith(b"</ListBucketResult>")
        or any(marker in document for marker in _UNUSUAL)
    ):
        return None
    keys = _KEY.findall(document)
    prefixes = _PREFIX.findall(document)
    truncated = _TRUNCATED.findall(document)
    tokens = _TOKEN.findall(document)
    encodings = _ENCODING.findall(document)
    # every element of these names was matched (none empty, self-closing or with attributes)
    if (
        len(keys) != _tags(b"Key", document) or len(keys) != _tags(b"Contents", document)
        or len(prefixes) != _tags(b"CommonPrefixes", document)
        or len(truncated) != 1 or _tags(b"IsTruncated", document) != 1
        or len(tokens) != _tags(b"NextContinuationToken", document) or len(tokens) > 1
        or len(encodings) != _tags(b"EncodingType", document) or len(encodings) > 1
    ):  # fmt: skip
        return None
    encoded = encodings == [b"url"]
    return {
        "Contents": [{"Key": k} for k in _texts(keys, encoded)],
        "CommonPrefixes": [{"Prefix": p} for p in _texts(prefixes, encoded)],
        "IsTruncated": truncated == [b"true"],
        "NextContinuationToken": _xml_text(tokens[0]) if tokens else None,
    }


def _tags(name: bytes, document: bytes) -> int:
    """How many elements named ``name`` open in ``document``."""
    return len(_OPENING[name].findall(document))


def _texts(raws: list[bytes], encoded: bool) -> list[str]:
    """The text of each element, percent-decoded if ``encoded``: all in one pass where the
    raw texts hold no line break, entity or encoded line break (joined by line breaks, which
    neither XML nor percent-decoding can then add or remove), else one by one."""
    if not raws:
        return []
    blob = b"\n".join(raws)
    if (
        b"&" in blob
        or blob.count(b"\n") != len(raws) - 1
        or (encoded and _ENCODED_LINE_BREAK.search(blob))
    ):
        texts = [_xml_text(raw) for raw in raws]
        return [unquote_plus(text) for text in texts] if encoded else texts
    if encoded:  # as unquote_plus: "+" is a space, bytes are UTF-8, invalid ones replaced
        return unquote_to_bytes(blob.replace(b"+", b" ")).decode("utf-8", "replace").split("\n")
    return blob.decode("utf-8").split("\n")


def _xml_text(raw: bytes) -> str:
    text = raw.decode("utf-8")
    if "&" not in text:
        return text
    resolved = _REFERENCE.sub(_resolve, text)
    if "&" in _REFERENCE.sub("", text):
        raise ValueError("undefined entity")
    return resolved


def _resolve(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named]
    return chr(int(decimal) if decimal else int(hexadecimal, 16))


def _parse_tree(document: bytes) -> dict[str, Any] | None:
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError:
        return None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != ns + "ListBucketResult":
        return None
    encoded = root.findtext(ns + "EncodingType") == "url"
    decode = unquote_plus if encoded else str
    return {
        "Contents": [{"Key": decode(e.findtext(ns + "Key"))} for e in root.iter(ns + "Contents")],
        "CommonPrefixes": [
            {"Prefix": decode(e.findtext(ns + "Prefix"))} for e in root.iter(ns + "CommonPrefixes")
        ],
        "IsTruncated": root.findtext(ns + "IsTruncated") == "true",
        "NextContinuationToken": root.findtext(ns + "NextContinuationToken"),
    }
