"""Write S3 objects exactly as cottoncandy 0.4.0 does, with raw boto3 (no cottoncandy import).

Written from a reading of cottoncandy 0.4.0 (PyPI sdist / ``gallantlab/cottoncandy``); none of
its code is copied. File and function names below refer to that release.

Transport (``s3client.py``, ``S3Client.upload_stream``)
    Every object goes through boto3's managed transfer, ``Object.upload_fileobj(stream,
    ExtraArgs={"ACL": acl, "Metadata": metadata}, Config=TransferConfig(...))`` with
    ``multipart_threshold`` 200 MiB and ``multipart_chunksize`` 100 MiB (``defaults.cfg``
    ``[upload_settings]``): one PutObject below 200 MiB, else a multipart upload of 100 MiB
    parts. The canned ACL is ``authenticated-read`` (``[basic] default_acl``), sent as the
    ``x-amz-acl`` header. No Content-Type is set (the server's default applies). Object names
    pass through ``utils.clean_object_name``: runs of ``/`` collapse to one and one leading
    ``/`` is dropped.

Raw arrays (``interfaces.py``, ``ArrayInterface.upload_raw_array``)
    User metadata (``x-amz-meta-*``; S3 lower-cases the names, all values are strings):

    ``dtype``
        ``array.dtype.str``: ``<f8``, ``>i4``, ``|u1``, ``|b1``, ``<U3``, ``|S5``... Structured
        dtypes degrade to ``|V<n>`` (fields lost); object arrays would upload pointers.
    ``shape``
        ``",".join(map(str, array.shape))``: ``"4,6"``, ``"5"`` for 1-d, ``""`` for 0-d.
    ``order``
        ``"C"`` when ``array.flags.carray`` (C-contiguous *and* aligned *and* writeable), else
        ``"F"``. Under Python 3 every non-C-contiguous array (F-contiguous included) is first
        copied to C order and the header reset to ``"C"``, so ``"F"`` survives only for a
        C-contiguous array that is read-only or unaligned, e.g. ``np.frombuffer(...)``: the body
        is then in C order although the header says ``"F"`` (a cottoncandy bug; its own reader
        fills an F-ordered array with those bytes, scrambling ndim >= 2 arrays, except for
        numcodecs bodies whose reader ignores ``order``).
    ``compression``
        ``str(compression)``: ``"False"`` (raw), ``"gzip"``, or the numcodecs name exactly as
        the caller spelled it (``"Zstd"``, ``"LZ4"``, ``"Zlib"``, ``"BZ2"``, ``"Blosc"``,
        ``"LZMA"``...; accepted when ``hasattr(numcodecs, name.lower())``, decoded with
        ``numcodecs.get_codec({"id": name.lower()})``). The default ``compression=True`` means
        ``"gzip"`` for arrays up to 2 GiB and ``"Zstd"`` above (``[compression]``), so
        cottoncandy's *default* raw array is gzip. ``None`` means ``False``.
    ``gzip`` (legacy, older releases; 0.4.0 only reads it)
        ``"True"``/``"False"`` instead of ``compression``; when present it overrides it.
    any ``**metadata`` the caller passed (must not clash with the four above).

    Body: ``compression == "False"``: the array's bytes in C order (``BytesIO(array.data)``).
    ``"gzip"``: a gzip member (``gzip.GzipFile(mode="wb")``, level 9, current mtime, no file
    name) of the same C-order bytes (the code transposes F-contiguous arrays first, which after
    the copy above only touches arrays that are both C- and F-contiguous: same bytes).
    numcodecs: ``codec.encode(array)`` with the codec's default settings (a framed, not a
    streaming, format; numcodecs' Zstd/LZ4/Blosc frames).

NumPy ``.npy`` (``upload_npy_array``)
    ``np.save(BytesIO(), array)`` body (NPY format, ``allow_pickle`` default), no array headers.

JSON / pickle (``BasicInterface.upload_json`` / ``upload_pickle``)
    ``json.dumps(value).encode()`` (default separators, so ``{"a": 1}``) and
    ``pickle.dumps(value)`` (default protocol), no array headers.

Sparse matrices (``upload_sparse_array``)
    Under ``<name>/``: one raw array per attribute, written by ``upload_raw_array`` with the
    *default* compression (gzip), and ``<name>/metadata.json`` =
    ``{"type": t, "attrs": [...], "shape": [rows, cols]}`` with t/attrs: ``csr``/``csc``/
    ``bsr``: ``data, indices, indptr``; ``coo``: ``row, col, data``; ``dia``: ``data,
    offsets``; anything else (dok, lil, and every scipy ``*_array`` class, which are not
    ``*_matrix`` subclasses) is converted with ``.tocsr()`` and stored as ``csr``.

Dask-style chunked arrays (``upload_dask_array`` + ``utils.generate_ndarray_chunks``)
    Parts ``<name>/pt0000``, ``pt0001``... (raw arrays, default compression, i.e. gzip) and
    ``<name>/metadata.json`` = ``{"shape": [...], "dtype": "<f4", "dask": [[coords, key],
    ...], "chunk_sizes": [[...], ...], "chunks": [[...], ...]}``. ``key`` is the full object
    key of the part (no bucket), ``coords`` the part's chunk index along every axis,
    ``chunk_sizes`` each part's shape, ``chunks`` dask's per-axis chunk lengths. With
    ``axis=k`` (default -1) the array is cut along axis k only, ``n = ceil(buffersize /
    itemsize / prod(other dims))`` elements per part (buffersize default 100 MiB, at least
    5 MiB); the number of parts is ``ceil(len / n) + 1``, so the *last part is always
    empty* (length 0 along the axis) and ``chunks`` ends in a 0. With ``axis=None`` the same
    ``+ 1`` applies on every axis (cubes of side ``n = ceil((buffersize / itemsize) **
    (1 / ndim))``), giving many empty parts.

Groups (``dict2cloud``)
    A dict of arrays becomes one raw array per key under ``<name>/`` (nested dicts nest);
    non-arrays go through ``np.asarray``. No metadata object.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import pickle
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "ACL",
    "DASK_BUFFERSIZE",
    "SPARSE_LAYOUTS",
    "clean_key",
    "dask_parts",
    "decode_raw_array",
    "raw_array_object",
    "upload_dask_array",
    "upload_dict",
    "upload_json",
    "upload_npy_array",
    "upload_object",
    "upload_pickle",
    "upload_raw_array",
    "upload_sparse_array",
]

MiB = 1 << 20
ACL = "authenticated-read"  # defaults.cfg [basic] default_acl
MULTIPART_THRESHOLD = 200 * MiB  # [upload_settings] mpu_use_threshold
MULTIPART_CHUNKSIZE = 100 * MiB  # [upload_settings] mpu_chunksize
DASK_BUFFERSIZE = 100 * MiB  # [upload_settings] dask_chunksize
MIN_DASK_BUFFERSIZE = 5 * MiB  # [upload_settings] min_mpu_size (asserted)
LARGE_ARRAY = 2**31  # above this many bytes compression=True picks Zstd, not gzip
SPARSE_LAYOUTS = {
    "csr": ("data", "indices", "indptr"),
    "csc": ("data", "indices", "indptr"),
    "bsr": ("data", "indices", "indptr"),
    "coo": ("row", "col", "data"),
    "dia": ("data", "offsets"),
}


def clean_key(name: str) -> str:
    """The key cottoncandy uses for ``name``: ``//`` runs collapsed, one leading ``/`` off."""
    name = re.sub("//+", "/", name)
    return name[1:] if name.startswith("/") else name


def _join(prefix: str, name: str) -> str:
    return prefix + name if prefix.endswith("/") or not prefix else f"{prefix}/{name}"


def upload_object(
    client: Any,
    bucket: str,
    key: str,
    body: bytes,
    metadata: Mapping[str, str] | None = None,
    *,
    acl: str | None = ACL,
) -> str:
    """One object the way cottoncandy sends it: boto3's managed upload with its thresholds.

    ``acl=None`` leaves out the ``x-amz-acl`` header for a server that refuses canned ACLs.
    Returns the (cleaned) key.
    """
    from boto3.s3.transfer import TransferConfig

    key = clean_key(key)
    extra: dict[str, Any] = {"Metadata": dict(metadata or {})}
    if acl is not None:
        extra["ACL"] = acl
    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE
    )
    client.upload_fileobj(io.BytesIO(body), bucket, key, ExtraArgs=extra, Config=config)
    return key


def raw_array_object(
    array: np.ndarray,
    compression: bool | str | None = True,
    *,
    legacy_gzip_flag: bool | None = None,
    **metadata: str,
) -> tuple[bytes, dict[str, str]]:
    """The body and user metadata ``upload_raw_array(name, array, compression)`` writes.

    ``legacy_gzip_flag`` writes the pre-0.4 ``gzip: True|False`` header in place of
    ``compression`` (0.4.0 still reads it).
    """
    array = np.asanyarray(array)
    if compression is None:
        compression = False
    if compression is True:
        compression = "Zstd" if array.nbytes > LARGE_ARRAY else "gzip"
    order = "C" if array.flags.carray else "F"
    if not array.flags.c_contiguous:  # Python 3: always to C order, header follows
        order = "C"
        array = np.array(array, order="C")
    meta = {
        "dtype": array.dtype.str,
        "shape": ",".join(str(n) for n in array.shape),
        "compression": str(compression),
        "order": order,
    }
    clash = set(metadata) & set(meta)
    if clash:
        raise ValueError(f"metadata names reserved by cottoncandy: {sorted(clash)}")
    meta.update(metadata)
    raw = array.tobytes(order="C")
    if compression is False:
        body = raw
    elif compression == "gzip":
        buffer = io.BytesIO()
        with gzip.GzipFile(mode="wb", fileobj=buffer) as gz:
            gz.write(raw)
        body = buffer.getvalue()
    else:
        import numcodecs

        if not hasattr(numcodecs, compression.lower()):
            raise ValueError(f"Unknown compression scheme: {compression}")
        body = bytes(numcodecs.get_codec({"id": compression.lower()}).encode(array))
    if legacy_gzip_flag is not None:
        del meta["compression"]
        meta["gzip"] = str(legacy_gzip_flag)
    return body, meta


def upload_raw_array(
    client: Any,
    bucket: str,
    key: str,
    array: np.ndarray,
    compression: bool | str | None = True,
    *,
    acl: str | None = ACL,
    legacy_gzip_flag: bool | None = None,
    **metadata: str,
) -> dict[str, str]:
    """``cci.upload_raw_array(key, array, compression)``; returns the metadata written."""
    body, meta = raw_array_object(array, compression, legacy_gzip_flag=legacy_gzip_flag, **metadata)
    upload_object(client, bucket, key, body, meta, acl=acl)
    return meta


def decode_raw_array(body: bytes, metadata: Mapping[str, str]) -> np.ndarray:
    """Decode a raw-array object as cottoncandy 0.4.0's ``download_raw_array`` does.

    Reference semantics for tests, including its quirks: the ``gzip`` header overrides
    ``compression``; raw and gzip bodies are poured into an array of the header's ``order``;
    numcodecs bodies are reshaped in C order whatever ``order`` says.
    """
    meta = {k.lower(): v for k, v in metadata.items()}
    shape = tuple(int(n) for n in meta["shape"].split(",")) if meta["shape"] else ()
    dtype = np.dtype(meta["dtype"])
    if "gzip" in meta:
        truthy = meta["gzip"] in ("True", "true", "tru", "t", "y", "yes", "1")
        meta["compression"] = "gzip" if truthy else "False"
    compression = meta["compression"]
    if compression not in ("gzip", "False", "None"):
        import numcodecs

        data = numcodecs.get_codec({"id": compression.lower()}).decode(body)
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if compression == "gzip":
        body = gzip.decompress(body)
    order = meta.get("order", "C")
    out = np.empty(shape, dtype=dtype, order=order)
    flat = (out.T if out.flags.f_contiguous else out).reshape(-1).view(np.uint8)
    flat[:] = np.frombuffer(body, dtype=np.uint8, count=out.nbytes)
    return out


def upload_npy_array(
    client: Any, bucket: str, key: str, array: np.ndarray, *, acl: str | None = ACL, **metadata: str
) -> str:
    """``cci.upload_npy_array``: an ``np.save`` body, only the caller's metadata."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return upload_object(client, bucket, key, buffer.getvalue(), metadata, acl=acl)


def upload_json(
    client: Any, bucket: str, key: str, value: Any, *, acl: str | None = ACL, **metadata: str
) -> str:
    """``cci.upload_json``: ``json.dumps(value)`` as UTF-8."""
    return upload_object(client, bucket, key, json.dumps(value).encode(), metadata, acl=acl)


def upload_pickle(
    client: Any, bucket: str, key: str, value: Any, *, acl: str | None = ACL, **metadata: str
) -> str:
    """``cci.upload_pickle``: ``pickle.dumps(value)`` with the default protocol."""
    return upload_object(client, bucket, key, pickle.dumps(value), metadata, acl=acl)


def _sparse_layout(matrix: Any) -> tuple[Any, str, tuple[str, ...]]:
    import scipy.sparse as sp

    for kind in ("csr", "coo", "csc", "bsr", "dia"):  # cottoncandy's isinstance order
        if isinstance(matrix, getattr(sp, f"{kind}_matrix")):
            return matrix, kind, SPARSE_LAYOUTS[kind]
    return matrix.tocsr(), "csr", SPARSE_LAYOUTS["csr"]


def upload_sparse_array(
    client: Any,
    bucket: str,
    key: str,
    matrix: Any,
    *,
    compression: bool | str | None = True,
    acl: str | None = ACL,
) -> dict[str, Any]:
    """``cci.upload_sparse_array``: attribute arrays + ``metadata.json`` under ``key/``.

    cottoncandy always uses the default compression for the parts (gzip unless the user's
    config says otherwise); ``compression`` stands for that configuration. Returns the
    metadata document.
    """
    key = clean_key(key)
    matrix, kind, attrs = _sparse_layout(matrix)
    for attr in attrs:
        upload_raw_array(
            client, bucket, _join(key, attr), getattr(matrix, attr), compression, acl=acl
        )
    document = {"type": kind, "attrs": list(attrs), "shape": list(matrix.shape)}
    upload_json(client, bucket, _join(key, "metadata.json"), document, acl=acl)
    return document


def dask_parts(
    array: np.ndarray, axis: int | None = -1, buffersize: int = DASK_BUFFERSIZE
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """The (chunk coordinates, view) pairs of ``utils.generate_ndarray_chunks``, in order.

    Reproduces its sizing, including the extra, empty, last part along each cut axis, and
    its treatment of negative axes: only ``-1`` means the last axis; ``-2`` and the like match
    no axis, so the whole array becomes a single part.
    """
    if buffersize < MIN_DASK_BUFFERSIZE:
        raise ValueError("cottoncandy asserts buffersize >= 5 MiB")
    shape = array.shape
    if axis is None:
        logsum, factor = 0.0, array.ndim
    else:
        if axis == -1:  # only -1 is normalised: other negative axes give one whole part
            axis = array.ndim - 1
        logsum = np.sum([np.log(n) for i, n in enumerate(shape) if i != axis])
        factor = 1
    # numpy's log/exp, as cottoncandy: math's could round differently at an exact boundary
    side = int(np.ceil(np.exp(((np.log(buffersize) - np.log(array.itemsize)) - logsum) / factor)))
    counts = [math.ceil(n / side) + 1 for n in shape]
    if axis is not None:
        counts = [c if i == axis else 1 for i, c in enumerate(counts)]
    sizes = [side if axis is None or i == axis else n for i, n in enumerate(shape)]
    for coords in itertools.product(*(range(c) for c in counts)):
        index = tuple(
            slice(sizes[d] * c, min(sizes[d] * (c + 1), shape[d])) for d, c in enumerate(coords)
        )
        yield coords, array[index]


def upload_dask_array(
    client: Any,
    bucket: str,
    key: str,
    array: np.ndarray,
    axis: int | None = -1,
    buffersize: int = DASK_BUFFERSIZE,
    *,
    compression: bool | str | None = True,
    acl: str | None = ACL,
    **metadata: str,
) -> dict[str, Any]:
    """``cci.upload_dask_array``: parts ``key/pt%04i`` + ``key/metadata.json``.

    ``compression`` stands for the user's configured default (cottoncandy passes none).
    ``metadata`` goes on ``metadata.json`` as ``x-amz-meta-*``. Returns the JSON document.
    """
    key = clean_key(key)
    document: dict[str, Any] = {
        "shape": list(array.shape),
        "dtype": array.dtype.str,
        "dask": [],
        "chunk_sizes": [],
    }
    for i, (coords, part) in enumerate(dask_parts(array, axis, buffersize)):
        part = part.copy()
        name = _join(key, f"pt{i:04d}")
        document["dask"].append([list(coords), name])
        document["chunk_sizes"].append(list(part.shape))
        upload_raw_array(client, bucket, name, part, compression, acl=acl)
    per_axis: list[dict[int, int]] = [{} for _ in range(array.ndim)]
    for (coords, _name), size in zip(document["dask"], document["chunk_sizes"]):
        for d, c in enumerate(coords):
            per_axis[d].setdefault(c, size[d])
    document["chunks"] = [[n for _, n in sorted(sizes.items())] for sizes in per_axis]
    upload_json(client, bucket, _join(key, "metadata.json"), document, acl=acl, **metadata)
    return document


def upload_dict(
    client: Any,
    bucket: str,
    key: str,
    mapping: Mapping[str, Any],
    *,
    compression: bool | str | None = True,
    acl: str | None = ACL,
) -> list[str]:
    """``cci.dict2cloud``: one raw array per entry under ``key/`` (nested dicts nest).

    Returns the keys written.
    """
    written = []
    for name, value in mapping.items():
        child = _join(clean_key(key), name)
        if isinstance(value, Mapping):
            written += upload_dict(client, bucket, child, value, compression=compression, acl=acl)
        else:
            upload_raw_array(client, bucket, child, np.asarray(value), compression, acl=acl)
            written.append(clean_key(child))
    return written
