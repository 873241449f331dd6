"""``python -m ccstore``: the command-line interface (see ccstore.cli)."""

from .cli import main

raise SystemExit(main())
