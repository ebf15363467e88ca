"""CLI command ``recommender app``: serve the Streamlit app (on localhost unless told otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError, DataFileNotFoundError
from recommender.types import MAX_UPLOAD_MB

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def app_script() -> Path:
    from recommender.paths import REPO_ROOT

    return REPO_ROOT / "app" / "streamlit_app.py"


def app_command(port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` command line that serves the app."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}; expected 1-65535")
    script = app_script()
    if not script.is_file():
        raise DataFileNotFoundError(f"the app is not installed next to the package: {script} is missing "
                                    "(install from a source checkout: pip install -e .)")
    return [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", address,
            "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(MAX_UPLOAD_MB),
            "--client.toolbarMode", "minimal"]


def cmd_app(args: argparse.Namespace) -> int:
    cmd = app_command(args.port, args.address)
    if args.address not in LOCAL_ADDRESSES:
        print(f"warning: serving on {args.address}: the app has no authentication; anyone who can reach "
              "this address can start searches on this machine", file=sys.stderr)
    host = f"[{args.address}]" if ":" in args.address else args.address
    print(f"serving the app on http://{host}:{args.port}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # exec: the server takes this process's place, so signals (Ctrl-C, kill) reach it directly
    os.execve(cmd[0], cmd, env)
    return 0  # pragma: no cover - execve does not return


def register(sub: Any) -> None:
    p = sub.add_parser("app", help="serve the web app (Streamlit) on localhost")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; the app has no login)")
    p.set_defaults(func=cmd_app)

