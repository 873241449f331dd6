"""``python -m tests.fake_drive``: run the fake for manual use."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .server import FakeDrive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Google Drive v2 server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    parser.add_argument(
        "--service-account", metavar="PATH", help="write a service-account JSON here"
    )
    args = parser.parse_args(argv)
    fake = FakeDrive(args.host, args.port, require_auth=not args.no_auth).start()
    print(f"fake Drive v2 at {fake.url} (token_uri {fake.token_uri})", flush=True)
    print(f"discoveryServiceUrl: {fake.discovery_url}", flush=True)
    if args.service_account:
        # tests/drive_client.py makes the key (it needs cryptography, the fake does not)
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from drive_client import service_account_info

        with open(args.service_account, "w") as out:
            json.dump(service_account_info(fake), out, indent=1)
        print(f"service account JSON: {args.service_account}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
