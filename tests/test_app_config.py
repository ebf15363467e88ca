"""However the app is started, it serves this machine only and has the upload limit: the
script-level app/.streamlit/config.toml is read from any working folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "app" / "streamlit_app.py"
CONFIG = ROOT / "app" / ".streamlit" / "config.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            for line in list(fh)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_the_config_file_matches_the_limits_the_code_enforces():
    from app import ui
    from recommender.types import MAX_UPLOAD_MB

    server = tomllib.loads(CONFIG.read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert server["maxUploadSize"] == MAX_UPLOAD_MB == ui.MAX_UPLOAD_MB


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads /proc/net/tcp")
@pytest.mark.parametrize("cwd", ["repo", "elsewhere"])
def test_plain_streamlit_run_binds_localhost_and_has_the_upload_limit(tmp_path, cwd):
    port = _free_port()
    home = tmp_path / "home"  # no ~/.streamlit that could hide a missing project config
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for key in [k for k in env if k.startswith("STREAMLIT_")]:
        del env[key]
    where = ROOT if cwd == "repo" else tmp_path
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(SCRIPT.relative_to(ROOT))
                             if cwd == "repo" else str(SCRIPT), "--server.port", str(port)],
                            cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the app did not answer on 127.0.0.1")
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only: not 0.0.0.0, not ::
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # the upload limit, as Streamlit resolves its config for this script from this folder
    probe = ("import sys; from streamlit import config; config._main_script_path = sys.argv[1]; "
             "config.get_config_options(force_reparse=True); "
             "print(config.get_option('server.maxUploadSize'), config.get_option('server.address'))")
    out = subprocess.run([sys.executable, "-c", probe, str(SCRIPT)], cwd=where, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["20", "127.0.0.1"], out.stderr
