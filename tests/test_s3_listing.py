"""ListObjectsV2 documents: the regular-expression scan against ElementTree, on documents
written by ElementTree itself (so every escape is one an XML writer makes)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccstore.backends.s3_listing import _parse_tree, _scan, parse_listing

NS = "http://s3.amazonaws.com/doc/2006-03-01/"

# characters XML 1.0 can carry (no other control characters, no surrogates)
xml_text = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\ufffe"],
    ),
    max_size=12,
)


def listing(
    keys: list[str],
    prefixes: list[str],
    *,
    encoding: str | None,
    truncated: bool = False,
    token: str | None = None,
    ascii_only: bool = False,
    indent: bool = False,
) -> bytes:
    """A ListBucketResult as a server writes it; ``encoding`` "url" percent-encodes keys."""
    quoted = {None: str, "url": lambda k: quote(k, safe="/"), "plus": quote_plus}[encoding]
    root = ElementTree.Element(f"{{{NS}}}ListBucketResult")
    if encoding:
        ElementTree.SubElement(root, f"{{{NS}}}EncodingType").text = "url"
    ElementTree.SubElement(root, f"{{{NS}}}Name").text = "bucket"
    ElementTree.SubElement(root, f"{{{NS}}}Prefix").text = "p/"
    ElementTree.SubElement(root, f"{{{NS}}}IsTruncated").text = "true" if truncated else "false"
    if token is not None:
        ElementTree.SubElement(root, f"{{{NS}}}NextContinuationToken").text = token
    for key in keys:
        contents = ElementTree.SubElement(root, f"{{{NS}}}Contents")
        ElementTree.SubElement(contents, f"{{{NS}}}Key").text = quoted(key)
        ElementTree.SubElement(contents, f"{{{NS}}}ETag").text = '"etag&<>"'
        ElementTree.SubElement(contents, f"{{{NS}}}Size").text = "4368"
    for prefix in prefixes:
        common = ElementTree.SubElement(root, f"{{{NS}}}CommonPrefixes")
        ElementTree.SubElement(common, f"{{{NS}}}Prefix").text = quoted(prefix)
    if indent:
        ElementTree.indent(root)
    ElementTree.register_namespace("", NS)
    charset = "us-ascii" if ascii_only else "utf-8"  # us-ascii: "&#233;" for "é"
    return ElementTree.tostring(root, encoding=charset, xml_declaration=True)


@settings(max_examples=300)
@given(
    keys=st.lists(xml_text, max_size=6),
    prefixes=st.lists(xml_text, max_size=3),
    encoding=st.sampled_from([None, "url", "plus"]),
    truncated=st.booleans(),
    token=st.none() | xml_text,
    ascii_only=st.booleans(),
    indent=st.booleans(),
)
def test_scan_reads_what_elementtree_reads(
    keys, prefixes, encoding, truncated, token, ascii_only, indent
):
    document = listing(
        keys,
        prefixes,
        encoding=encoding,
        truncated=truncated,
        token=token,
        ascii_only=ascii_only,
        indent=indent,
    )
    expected = _parse_tree(document)
    assert expected is not None
    assert parse_listing(document) == expected
    scanned = _scan(document)
    assert scanned in (None, expected)
    # what ElementTree writes that the scan leaves to it: "\r", and empty elements
    if b"\r" not in document and b" />" not in document:
        assert scanned == expected
    if encoding is not None:
        assert [c["Key"] for c in expected["Contents"]] == keys
        assert [c["Prefix"] for c in expected["CommonPrefixes"]] == prefixes


def test_scan_decodes_keys_with_encoded_line_breaks_one_by_one():
    document = listing(["a\nb", "c"], [], encoding="url")
    assert b"%0A" in document
    assert [c["Key"] for c in _scan(document)["Contents"]] == ["a\nb", "c"]


UNUSUAL = {
    "prefixed": (
        b'<?xml version="1.0"?><s3:ListBucketResult xmlns:s3="' + NS.encode() + b'">'
        b"<s3:IsTruncated>false</s3:IsTruncated>"
        b"<s3:Contents><s3:Key>a</s3:Key></s3:Contents></s3:ListBucketResult>"
    ),
    "cdata": (
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b"<Contents><Key><![CDATA[a<b]]></Key></Contents></ListBucketResult>"
    ),
    "comment": (
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b"<Contents><!-- x --><Key>a&lt;b</Key></Contents></ListBucketResult>"
    ),
    "attribute": (
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b'<Contents><Key id="1">a&lt;b</Key></Contents></ListBucketResult>'
    ),
}


@pytest.mark.parametrize("kind", sorted(UNUSUAL))
def test_unusual_documents_go_to_elementtree(kind):
    document = UNUSUAL[kind]
    assert _scan(document) is None
    assert [c["Key"] for c in parse_listing(document)["Contents"]] == [
        "a<b" if kind != "prefixed" else "a"
    ]


@pytest.mark.parametrize(
    "document",
    [
        b"<Error><Code>AccessDenied</Code></Error>",
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b"<Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b"<Contents><Key>a</Key></Contents>",  # cut short
        b"",
    ],
)
def test_what_is_not_a_listing_is_none(document):
    assert parse_listing(document) is None
