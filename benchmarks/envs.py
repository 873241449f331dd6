"""Virtualenvs for benchmark peers whose pins conflict (cottoncandy 0.4.0 needs boto3 < 1.36).

Each environment is created once under ``$CCSTORE_BENCH_ENVS`` (default
``~/.cache/ccstore-bench``) from PyPI and reused; ccstore itself is installed from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVS = {
    # cottoncandy 0.4.0 as its users run it, with the boto3 it allows.
    "cottoncandy": ["cottoncandy==0.4.0", "numpy"],
    # ccstore's core install alone: pip picks the newest cryptography, which pydrive2 (the
    # gdrive extra, hence ccstore[all]) holds below 44. cryptography >= 50 releases the GIL
    # while encrypting, so chunks encrypt on several cores.
    "core": [f"-e{ROOT}"],
    # current s3fs, obstore and boto3 side by side, plus ccstore for the zarr comparisons.
    "peers": ["s3fs>=2025", "obstore>=0.6", "boto3>=1.40", "numpy", "zarr>=3.1", f"-e{ROOT}"],
}


def python_for(name: str) -> str:
    """The interpreter of environment ``name``, creating the environment if needed."""
    base = Path(os.environ.get("CCSTORE_BENCH_ENVS", Path.home() / ".cache" / "ccstore-bench"))
    env = base / name
    python = env / "bin" / "python"
    marker = env / ".ready"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ENVS[name]], check=True)
        marker.touch()
    return str(python)
