"""The master's web UI: served at `/` and `/static/` by every replica, and its script (run in
node with a minimal DOM) shows every view of a real /state."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import orjson
import pytest
from support.fake_scheduler import FakeScheduler, framework_info
from support.master_harness import MasterHandle
from support.read_cluster import Populated

from meseta.api import webui

CHECK = Path(__file__).with_name("webui_check.js")


async def fetch(master: MasterHandle, path: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(master.url + path) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_the_ui_is_served_at_the_root(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    status, kind, body = await fetch(master, "/")
    assert status == 200 and kind.startswith("text/html")
    assert b'<script src="/static/app.js">' in body
    for asset, media in (("app.js", "javascript"), ("style.css", "text/css")):
        status, kind, _ = await fetch(master, f"/static/{asset}")
        assert status == 200 and media in kind, (asset, kind)
    assert (await fetch(master, "/static/../app.py"))[0] == 404


def test_the_script_never_writes_markup() -> None:
    """Data reaches the page only as text nodes (no innerHTML, no document.write)."""
    source = (webui.ASSETS / "app.js").read_text()
    assert "innerHTML" not in source and "document.write" not in source


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_every_view_renders_a_real_state(
    cluster: tuple[MasterHandle, Populated], tmp_path: Path
) -> None:
    master, _ = cluster
    async with FakeScheduler(master.url) as gone:  # a completed framework, for its table
        _, first = await gone.subscribe(framework_info("gone-framework"))
        assert first["type"] == "SUBSCRIBED"
        assert (await gone.call("TEARDOWN")).status == 202
    status, _, body = await fetch(master, "/state")
    assert status == 200
    assert len(orjson.loads(body)["completed_frameworks"]) == 1
    state = tmp_path / "state.json"
    state.write_bytes(body)
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(CHECK), str(webui.ASSETS / "app.js"), str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
