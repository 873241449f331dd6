"""The fake Drive v2 server (tests/fake_drive.py), driven by the real pydrive2 client.

Every request goes through pydrive2 / googleapiclient / oauth2client / httplib2 as shipped;
tests that need what pydrive2 cannot express (multipart, multi-chunk resumable uploads,
arbitrary Range headers, the raw resumable protocol) use the same authorized service or http.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import urllib.request

import httplib2
import pytest

pytest.importorskip("pydrive2")

from drive_client import connect
from fake_drive import FOLDER, ROOT_ID, FakeDrive
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload
from pydrive2.files import ApiRequestError

# oauth2client signs its JWT with pyOpenSSL's deprecated crypto.sign
pytestmark = pytest.mark.filterwarnings("ignore:sign\\(\\) is deprecated:DeprecationWarning")
KIB = 1024
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def fake():
    with FakeDrive() as server:
        yield server


@pytest.fixture(scope="module")
def client(fake):
    return connect(fake)


@pytest.fixture
def drive(client, fake):
    fake.clear_faults()
    fake.reset_log()
    return client[0]


@pytest.fixture
def gauth(client, drive):
    return client[1]


@pytest.fixture
def folder(drive):
    f = drive.CreateFile({"title": "work", "mimeType": FOLDER})
    f.Upload()
    return f


def payload(n: int, seed: int = 1) -> bytes:
    """n deterministic bytes, CR/LF and boundary-looking runs included."""
    block = hashlib.sha256(str(seed).encode()).digest() + b"\r\n--==\n\r"
    return (block * (n // len(block) + 1))[:n]


def upload(drive, folder, title: str, data: bytes | None = None, **meta):
    f = drive.CreateFile({"title": title, "parents": [{"id": folder["id"]}], **meta})
    if data is not None:
        f.content = io.BytesIO(data)
        f.dirty["content"] = True  # what SetContentFile/SetContentString do, for raw bytes
    f.Upload()
    return f


def titles(files) -> list[str]:
    return sorted(f["title"] for f in files)


def children(drive, folder, extra: str = "", **param) -> list:
    q = f"'{folder['id']}' in parents" + extra
    return drive.ListFile({"q": q, **param}).GetList()


def get_raw(gauth, url: str, **headers) -> tuple[httplib2.Response, bytes]:
    """A GET on pydrive2's own authorized http object."""
    return gauth.Get_Http_Object().request(url, "GET", headers=headers)


# -- auth ------------------------------------------------------------------------------------


def test_service_account_jwt_flow_and_bearer_check(fake, gauth, drive):
    claims = fake.token_claims[0]
    assert claims["iss"] == "ccstore-test@fake-project.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/drive"
    assert claims["aud"] == fake.token_uri
    url = f"{fake.url}/drive/v2/files/root"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        resp, body = httplib2.Http().request(url, "GET", headers=headers)
        assert resp.status == 401
        assert json.loads(body)["error"]["errors"][0]["reason"] == "authError"
    assert fake.count("files.get", status=401) == 2


def test_revoked_token_is_refreshed_by_oauth2client(fake, drive):
    before = len(fake.token_claims)
    fake.revoke_tokens()
    assert drive.GetAbout()["rootFolderId"] == ROOT_ID
    # oauth2client saw the 401, fetched a new token from the fake, and re-sent the request
    assert [r.status for r in fake.requests if r.op == "about.get"] == [401, 200]
    assert fake.count("oauth.token") == 1
    assert len(fake.token_claims) == before + 1


# -- folders, uploads, downloads -------------------------------------------------------------


def test_folder_and_file_resources(fake, drive, folder):
    assert folder["mimeType"] == FOLDER
    assert [p["id"] for p in folder["parents"]] == [ROOT_ID]
    assert "fileSize" not in folder and "downloadUrl" not in folder
    f = upload(drive, folder, "notes.txt", b"hello drive", mimeType="text/plain")
    assert f["kind"] == "drive#file"
    assert [p["id"] for p in f["parents"]] == [folder["id"]]
    assert f["fileSize"] == "11"
    assert f["md5Checksum"] == hashlib.md5(b"hello drive").hexdigest()
    assert f["labels"]["trashed"] is False
    assert RFC3339.fullmatch(f["createdDate"]) and RFC3339.fullmatch(f["modifiedDate"])
    assert f["downloadUrl"].startswith(fake.url + "/drive/v2/files/" + f["id"])
    fresh = drive.CreateFile({"id": f["id"]})
    assert fresh.GetContentString() == "hello drive"  # files.get, then GET downloadUrl
    assert [r.op for r in fake.requests][-2:] == ["files.get", "files.get_media"]
    root = drive.CreateFile({"id": "root"})
    root.FetchMetadata()
    assert (root["id"], root["title"]) == (ROOT_ID, "My Drive")


def test_pydrive2_upload_is_one_resumable_session(fake, drive, folder, tmp_path):
    data = payload(1_000_000)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    f = drive.CreateFile({"parents": [{"id": folder["id"]}]})
    f.SetContentFile(str(src))
    fake.reset_log()
    f.Upload()
    f.content.close()
    # pydrive2 always uploads with MediaIoBaseUpload(resumable=True), 100 MiB chunks
    assert [(r.op, r.content_range) for r in fake.requests] == [
        ("files.insert:resumable", None),
        ("upload.chunk", "bytes 0-999999/1000000"),
    ]
    assert fake.requests[1].bytes_received == len(data)
    assert f["title"] == "blob.bin" and f["fileSize"] == str(len(data))
    out = tmp_path / "out.bin"
    drive.CreateFile({"id": f["id"]}).GetContentFile(str(out))
    assert out.read_bytes() == data
    assert fake.content(f["id"]) == data


def test_multipart_and_media_uploads(fake, gauth, drive, folder):
    files = gauth.service.files()
    data = payload(70_000, seed=2)
    media = MediaIoBaseUpload(io.BytesIO(data), "application/x-test", resumable=False)
    body = {"title": "multi.bin", "parents": [{"id": folder["id"]}]}
    made = files.insert(body=body, media_body=media).execute()
    assert fake.requests[-1].op == "files.insert:multipart"
    assert made["mimeType"] == "application/x-test" and fake.content(made["id"]) == data
    media = MediaIoBaseUpload(io.BytesIO(b"plain media"), "text/plain", resumable=False)
    made = files.insert(media_body=media).execute()
    assert fake.requests[-1].op == "files.insert:media"
    assert made["title"] == "Untitled" and fake.content(made["id"]) == b"plain media"
    media = MediaIoBaseUpload(io.BytesIO(data[:5]), "text/plain", resumable=False)
    updated = files.update(fileId=made["id"], media_body=media).execute()
    assert fake.requests[-1].op == "files.update:media"
    assert updated["id"] == made["id"] and fake.content(made["id"]) == data[:5]


def test_resumable_upload_in_chunks(fake, gauth, drive, folder):
    data = payload(5 * 256 * KIB + 1000, seed=3)
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream", 256 * KIB, True)
    body = {"title": "big.bin", "parents": [{"id": folder["id"]}]}
    request = gauth.service.files().insert(body=body, media_body=media)
    done = None
    while done is None:
        _, done = request.next_chunk()
    chunks = [r for r in fake.requests if r.op == "upload.chunk"]
    assert [r.status for r in chunks] == [308] * 5 + [200]
    assert chunks[0].content_range == f"bytes 0-{256 * KIB - 1}/{len(data)}"
    assert chunks[-1].content_range == f"bytes {5 * 256 * KIB}-{len(data) - 1}/{len(data)}"
    assert sum(r.bytes_received for r in chunks) == len(data)
    assert fake.content(done["id"]) == data


def test_unaligned_chunks_are_persisted_in_256k_units(fake, gauth, drive, folder):
    data = payload(600_000, seed=4)
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream", 300_000, True)
    done = gauth.service.files().insert(body={"title": "odd.bin"}, media_body=media).execute()
    # googleapiclient follows the 308's Range header and re-sends what was not kept
    chunks = [r.content_range for r in fake.requests if r.op == "upload.chunk"]
    assert chunks == [
        "bytes 0-299999/600000",
        "bytes 262144-562143/600000",
        "bytes 524288-599999/600000",
    ]
    assert fake.content(done["id"]) == data


def test_raw_resumable_protocol(fake, gauth, drive, folder):
    http = gauth.Get_Http_Object()
    start = f"{fake.url}/upload/drive/v2/files?uploadType=resumable"
    meta = json.dumps({"title": "raw.bin", "parents": [{"id": folder["id"]}]})
    resp, _ = http.request(start, "POST", meta, {"Content-Type": "application/json"})
    assert resp.status == 200
    session = resp["location"]
    assert "upload_id=" in session
    data = payload(3 * 256 * KIB, seed=5)

    def put(body: bytes, content_range: str | None):
        headers = {"Content-Range": content_range} if content_range else {}
        return http.request(session, "PUT", body, headers)

    resp, _ = put(b"", "bytes */*")
    assert resp.status == 308 and "range" not in resp  # nothing persisted yet
    resp, _ = put(data[: 256 * KIB], f"bytes 0-{256 * KIB - 1}/*")
    assert resp.status == 308 and resp["range"] == f"bytes=0-{256 * KIB - 1}"
    resp, body = put(data[512 * KIB :], f"bytes {512 * KIB}-{len(data) - 1}/{len(data)}")
    assert resp.status == 400 and b"exceeds already uploaded size" in body  # a gap
    fake.inject_fault(503, op="upload.chunk")
    resp, _ = put(data[256 * KIB : 512 * KIB], f"bytes {256 * KIB}-{512 * KIB - 1}/*")
    assert resp.status == 503
    resp, _ = put(b"", f"bytes */{len(data)}")  # where are we after the 503?
    assert resp.status == 308 and resp["range"] == f"bytes=0-{256 * KIB - 1}"
    resp, _ = put(data[256 * KIB : 512 * KIB], f"bytes {256 * KIB}-{512 * KIB - 1}/*")
    assert resp.status == 308 and resp["range"] == f"bytes=0-{512 * KIB - 1}"
    # the empty last chunk googleapiclient sends for size-unknown uploads (issue #1801)
    resp, body = put(b"", f"bytes {512 * KIB}-{512 * KIB - 1}/{512 * KIB}")
    assert resp.status == 400 and b"Failed to parse Content-Range header." in body
    resp, body = put(data[512 * KIB :], f"bytes {512 * KIB}-{len(data) - 1}/{len(data)}")
    assert resp.status == 200
    file_id = json.loads(body)["id"]
    assert fake.content(file_id) == data
    resp, body = put(b"", f"bytes */{len(data)}")  # a finished session answers its file
    assert resp.status == 200 and json.loads(body)["id"] == file_id
    bad = session.replace("upload_id=", "upload_id=x")
    assert http.request(bad, "PUT", b"", {"Content-Range": "bytes */1"})[0].status == 404


def test_empty_file_round_trip(fake, drive, folder, tmp_path):
    f = upload(drive, folder, "empty.bin", b"")
    assert f["fileSize"] == "0"
    out = tmp_path / "empty.bin"
    drive.CreateFile({"id": f["id"]}).GetContentFile(str(out))  # a 416 ends the download
    assert out.read_bytes() == b""
    assert fake.requests[-1].status == 416


def test_ranged_downloads(fake, gauth, drive, folder):
    data = payload(1000, seed=6)
    f = upload(drive, folder, "ranged.bin", data)
    url = f"{fake.url}/drive/v2/files/{f['id']}?alt=media"
    cases = {
        "bytes=10-19": (206, "bytes 10-19/1000", data[10:20]),
        "bytes=990-": (206, "bytes 990-999/1000", data[990:]),
        "bytes=-5": (206, "bytes 995-999/1000", data[-5:]),
        "bytes=900-5000": (206, "bytes 900-999/1000", data[900:]),
        "bytes=-5000": (206, "bytes 0-999/1000", data),
    }
    for header, (status, content_range, body) in cases.items():
        resp, got = get_raw(gauth, url, Range=header)
        assert (resp.status, resp["content-range"], got) == (status, content_range, body)
    for header in ("bytes=1000-", "bytes=5000-6000", "bytes=-0"):
        resp, _ = get_raw(gauth, url, Range=header)
        assert (resp.status, resp["content-range"]) == (416, "bytes */1000")
    resp, got = get_raw(gauth, url)
    assert resp.status == 200 and got == data and "content-range" not in resp
    fake.reset_log()
    chunks = list(drive.CreateFile({"id": f["id"]}).GetContentIOBuffer(chunksize=400))
    assert chunks == [data[:400], data[400:800], data[800:]]
    assert [r.range for r in fake.requests if r.op == "files.get_media"] == [
        "bytes=0-399",
        "bytes=400-799",
        "bytes=800-1199",
    ]


# -- listing ---------------------------------------------------------------------------------


def test_list_query_filters(drive, folder):
    for title in ("a.txt", "b.txt", "it's.txt", "report 2024.csv"):
        upload(drive, folder, title, title.encode(), mimeType="text/plain")
    sub = upload(drive, folder, "sub", mimeType=FOLDER)
    gone = upload(drive, folder, "gone.txt", b"x")
    gone.Trash()
    everything = ["a.txt", "b.txt", "gone.txt", "it's.txt", "report 2024.csv", "sub"]
    assert titles(children(drive, folder)) == everything  # trashed items are listed too
    assert (
        titles(children(drive, folder, " and trashed = false")) == everything[:2] + everything[3:]
    )
    assert titles(children(drive, folder, " and trashed = true")) == ["gone.txt"]
    assert titles(children(drive, folder, " and title = 'it\\'s.txt'")) == ["it's.txt"]
    assert titles(children(drive, folder, f" and mimeType = '{FOLDER}'")) == ["sub"]
    not_folders = children(drive, folder, f" and mimeType != '{FOLDER}' and trashed = false")
    assert titles(not_folders) == ["a.txt", "b.txt", "it's.txt", "report 2024.csv"]
    either = " and (title = 'a.txt' or title = 'b.txt') and not trashed = true"
    assert titles(children(drive, folder, either)) == ["a.txt", "b.txt"]
    assert titles(children(drive, folder, " and title contains '2024'")) == ["report 2024.csv"]
    assert titles(children(drive, folder, " and title contains 'REP'")) == ["report 2024.csv"]
    assert children(drive, folder, " and title contains 'port'") == []  # word prefixes only
    assert titles(children(drive, sub)) == []
    with pytest.raises(ApiRequestError) as err:
        children(drive, folder, " and size > 3")
    assert err.value.error["code"] == 400


def test_list_pagination_and_order(fake, drive, folder):
    made = [upload(drive, folder, f"f{i}") for i in (3, 1, 4, 0, 2, 6, 5)]
    fake.reset_log()
    pages = list(drive.ListFile({"q": f"'{folder['id']}' in parents", "maxResults": 3}))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert fake.count("files.list") == 3
    assert [f["id"] for page in pages for f in page] == [f["id"] for f in made]
    newest = children(drive, folder, orderBy="modifiedDate desc")
    assert [f["id"] for f in newest] == [f["id"] for f in reversed(made)]
    assert [f["title"] for f in children(drive, folder, orderBy="title")] == [
        f"f{i}" for i in range(7)
    ]
    assert [f["id"] for f in children(drive, folder, orderBy="createdDate")] == [
        f["id"] for f in made
    ]
    made[2]["title"] = "f4 renamed"
    made[2].Upload()  # files.patch bumps modifiedDate
    assert fake.requests[-1].op == "files.patch"
    assert children(drive, folder, orderBy="modifiedDate desc")[0]["id"] == made[2]["id"]
    param = {"q": f"'{folder['id']}' in parents", "maxResults": 2, "orderBy": "title desc"}
    first = drive.ListFile(param).GetList()
    assert [f["title"] for f in first] == ["f6", "f5"]


def test_duplicate_titles_are_distinct_files(fake, drive, folder):
    one = upload(drive, folder, "same.bin", b"first")
    two = upload(drive, folder, "same.bin", b"second")
    assert one["id"] != two["id"]
    found = children(drive, folder, " and title = 'same.bin'")
    assert sorted(f["id"] for f in found) == sorted([one["id"], two["id"]])
    assert fake.content(one["id"]) == b"first" and fake.content(two["id"]) == b"second"


# -- update, trash, delete, copy, move -------------------------------------------------------


def test_update_content_in_place(fake, drive, folder):
    f = upload(drive, folder, "doc.txt", b"version one")
    old = dict(f)
    fake.reset_log()
    f.SetContentString("version two, longer")
    f.Upload()
    assert [r.op for r in fake.requests] == ["files.update:resumable", "upload.chunk"]
    assert f["id"] == old["id"]
    assert int(f["version"]) > int(old["version"])
    assert f["md5Checksum"] == hashlib.md5(b"version two, longer").hexdigest()
    assert f["modifiedDate"] > old["modifiedDate"]
    assert drive.CreateFile({"id": old["id"]}).GetContentString() == "version two, longer"
    assert len(children(drive, folder)) == 1


def test_trash_untrash_delete(fake, drive, folder):
    sub = upload(drive, folder, "sub", mimeType=FOLDER)
    inner = upload(drive, sub, "inner.txt", b"inner")
    sub.Trash()
    fresh = drive.CreateFile({"id": inner["id"]})
    fresh.FetchMetadata()
    assert fresh["labels"]["trashed"] is True  # inherited from the trashed folder
    assert fresh["explicitlyTrashed"] is False
    assert fresh.GetContentString() == "inner"  # trashed files can still be read
    sub.UnTrash()
    fresh.FetchMetadata()
    assert fresh["labels"]["trashed"] is False
    sub.Delete()  # permanent and recursive
    for item in (sub, inner):
        with pytest.raises(ApiRequestError) as err:
            drive.CreateFile({"id": item["id"]}).FetchMetadata()
        assert err.value.error["code"] == 404
        assert err.value.GetField("reason") == "notFound"
    assert children(drive, folder) == []


def test_copy(fake, drive, folder):
    other = upload(drive, folder, "other", mimeType=FOLDER)
    f = upload(drive, folder, "orig.bin", b"copy me")
    copied = f.Copy(target_folder=other, new_title="copied.bin")
    assert copied["id"] != f["id"] and copied["title"] == "copied.bin"
    assert [p["id"] for p in copied["parents"]] == [other["id"]]
    assert fake.content(copied["id"]) == b"copy me"
    plain = f.Copy()
    assert plain["title"] == "Copy of orig.bin"
    assert [p["id"] for p in plain["parents"]] == [folder["id"]]
    with pytest.raises(ApiRequestError) as err:
        other.Copy()
    assert err.value.GetField("reason") == "cannotCopyFile"


def test_move_between_folders(fake, gauth, drive, folder):
    a = upload(drive, folder, "a", mimeType=FOLDER)
    b = upload(drive, folder, "b", mimeType=FOLDER)
    f = upload(drive, a, "moving.txt", b"m")
    files = gauth.service.files()
    moved = files.patch(
        fileId=f["id"], body={}, addParents=b["id"], removeParents=a["id"]
    ).execute()
    assert [p["id"] for p in moved["parents"]] == [b["id"]]
    assert children(drive, a) == [] and [x["id"] for x in children(drive, b)] == [f["id"]]
    with pytest.raises(HttpError) as err:
        files.patch(fileId=f["id"], body={}, addParents=a["id"]).execute()
    assert err.value.resp.status == 403 and "cannotAddParent" in str(err.value.content)
    fresh = drive.CreateFile({"id": f["id"]})
    fresh.FetchMetadata()
    fresh["parents"] = [{"id": a["id"]}]
    fresh.Upload()  # pydrive2 sends the new parents in a files.patch
    assert [p["id"] for p in fresh["parents"]] == [a["id"]]
    with pytest.raises(ApiRequestError) as err:
        drive.CreateFile({"id": a["id"], "parents": [{"id": a["id"]}]}).Upload()
    assert err.value.error["code"] == 400


# -- injected faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, "userRateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (429, "rateLimitExceeded"),
        (500, "backendError"),
        (503, "backendError"),
    ],
)
def test_injected_errors_reach_pydrive2(fake, drive, folder, status, reason):
    f = upload(drive, folder, "x.txt", b"x")
    fake.inject_fault(status, reason, times=2, op="files.get")
    for _ in range(2):
        with pytest.raises(ApiRequestError) as err:
            drive.CreateFile({"id": f["id"]}).FetchMetadata()
        assert err.value.error["code"] == status
        assert err.value.GetField("reason") == reason
    drive.CreateFile({"id": f["id"]}).FetchMetadata()  # the fault is used up
    # pydrive2 executes with num_retries=0: each failure is exactly one request
    assert [r.status for r in fake.requests if r.op == "files.get"] == [status, status, 200]


def test_fault_predicates_and_order(fake, drive, folder):
    f = upload(drive, folder, "y.txt", b"y")
    fake.inject_fault(500, method="GET", path=r"/files$")  # lists only
    fake.inject_fault(429, match=lambda r: r.query.get("alt") == "media", times=1)
    drive.CreateFile({"id": f["id"]}).FetchMetadata()  # matches neither
    with pytest.raises(ApiRequestError) as err:
        children(drive, folder)
    assert err.value.error["code"] == 500
    with pytest.raises(ApiRequestError) as err:
        drive.CreateFile({"id": f["id"]}).GetContentString()
    assert err.value.error["code"] == 429
    assert len(children(drive, folder)) == 1
    assert drive.CreateFile({"id": f["id"]}).GetContentString() == "y"


def test_dropped_connections_are_resent_by_httplib2(fake, drive, folder):
    fake.inject_fault(action="drop", op="files.insert")
    upload(drive, folder, "once", mimeType=FOLDER)
    assert len(children(drive, folder)) == 1
    # the server applied the insert but the answer was lost: httplib2 re-sends the POST
    fake.inject_fault(action="drop_after", op="files.insert")
    upload(drive, folder, "twice", mimeType=FOLDER)
    assert titles(children(drive, folder)) == ["once", "twice", "twice"]
    assert fake.count("files.insert") == 5  # folder + 2 + 2


# -- shared drives ---------------------------------------------------------------------------


def test_shared_drive_basics(fake, gauth, drive):
    drive_id = fake.create_shared_drive("Team")
    f = drive.CreateFile({"title": "team.txt", "parents": [{"id": drive_id}]})
    f.SetContentString("team data")
    f.Upload()  # pydrive2 always sends supportsAllDrives=true
    assert f["driveId"] == drive_id and "owners" not in f
    listed = drive.ListFile({"q": "trashed = false", "corpora": "drive", "driveId": drive_id})
    assert [x["id"] for x in listed.GetList()] == [f["id"]]
    files = gauth.service.files()
    with pytest.raises(HttpError) as err:
        files.get(fileId=f["id"]).execute()  # without supportsAllDrives
    assert err.value.resp.status == 404
    plain = files.list(q=f"'{drive_id}' in parents", supportsAllDrives=True).execute()
    assert plain["items"] == []  # not without includeItemsFromAllDrives
    assert gauth.service.drives().get(driveId=drive_id).execute()["name"] == "Team"


# -- running it ------------------------------------------------------------------------------


def test_command_line_server():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "tests.fake_drive", "--port", "0", "--no-auth"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)[0]
        with urllib.request.urlopen(url + "/drive/v2/about", timeout=10) as resp:
            assert json.load(resp)["rootFolderId"] == ROOT_ID
    finally:
        proc.terminate()
        proc.wait(10)


def test_start_stop_frees_the_port():
    server = FakeDrive().start()
    url = server.url
    server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/drive/v2/about", timeout=2)
