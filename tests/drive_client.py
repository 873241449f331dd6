"""A real, authenticated pydrive2 client pointed at a FakeDrive (tests/fake_drive.py).

Only supported configuration is used, no pydrive2 or googleapiclient function is patched:

1. pydrive2 settings ``client_config_backend: service`` with ``service_config.client_json_dict``
   = a service-account JSON made here (a throwaway RSA key; ``token_uri`` = the fake's
   ``/token``). ``GoogleAuth.ServiceAuth()`` then runs oauth2client's real JWT-bearer flow
   against the fake.
2. pydrive2 has no API endpoint setting (``GoogleAuth.Authorize`` builds the service from
   googleapiclient's static discovery document, rooted at https://www.googleapis.com). So
   ``GoogleAuth.service`` - the public attribute that every ``GoogleDrive`` /
   ``GoogleDriveFile`` call reads - is replaced by a service that googleapiclient builds from
   the fake's discovery document (``discoveryServiceUrl``), whose ``rootUrl`` is the fake.
   Requests still run on pydrive2's own authorized, per-thread ``httplib2.Http`` objects.
"""

from __future__ import annotations

from typing import Any

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"


def service_account_info(
    fake: Any, email: str = "ccstore-test@fake-project.iam.gserviceaccount.com"
) -> dict[str, str]:
    """A service-account key file (as a dict) whose ``token_uri`` is ``fake``'s /token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "fake-key-1",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": fake.url + "/auth",
        "token_uri": fake.token_uri,
    }


def build_service(fake: Any, http: Any) -> Any:
    """A googleapiclient Drive v2 service whose every URL (uploads too) points at ``fake``."""
    from googleapiclient.discovery import build

    return build(
        "drive",
        "v2",
        http=http,
        discoveryServiceUrl=fake.discovery_url,
        static_discovery=False,
        cache_discovery=False,
    )


def connect(
    fake: Any, info: dict[str, str] | None = None, http_timeout: float = 30
) -> tuple[Any, Any]:
    """``(GoogleDrive, GoogleAuth)`` authenticated against ``fake`` as a service account."""
    from pydrive2.auth import GoogleAuth
    from pydrive2.drive import GoogleDrive

    settings = {
        "client_config_backend": "service",
        "service_config": {"client_json_dict": info or service_account_info(fake)},
        "oauth_scope": [DRIVE_SCOPE],
        "save_credentials": False,
    }
    gauth = GoogleAuth(settings=settings, http_timeout=http_timeout)
    gauth.ServiceAuth()  # credentials + pydrive2's own (googleapis.com) service, no request yet
    gauth.service = build_service(fake, gauth.http)
    return GoogleDrive(gauth), gauth
