"""deploy/scale_out.sh: two Streamlit replicas behind nginx, sticky per browser, websockets through.

A tiny app prints which replica (port) rendered it; nginx adds ``X-Upstream`` to every response.
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bench.chromium import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "scale_out.sh"

pytestmark = pytest.mark.slow

APP = """
    import streamlit as st
    from streamlit import config

    st.write(f"replica port {config.get_option('server.port')}")
    st.session_state.clicks = st.session_state.get("clicks", 0) + st.button("Click")
    st.write(f"clicks {st.session_state.clicks}")
"""


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free localhost ports (the script puts replicas on consecutive ports)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        taken = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                taken.append(s)
                s.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    raise RuntimeError("no run of free ports found")


def nginx_available() -> bool:
    return bool(shutil.which("nginx") or os.path.exists("/usr/sbin/nginx") or os.geteuid() == 0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from _cluster(tmp_path_factory)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory, monkeypatch_module):
    if not shutil.which("redis-server") and os.geteuid() != 0:
        pytest.skip("redis-server is not installed and cannot be installed without root")
    monkeypatch_module.delenv("FME_ROOMS_URL", raising=False)
    yield from _cluster(tmp_path_factory, "--redis")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _cluster(tmp_path_factory, *flags: str):
    """Run scale_out.sh (two replicas of APP) until the test module is done; its ports and output."""
    if not nginx_available():
        pytest.skip("nginx is not installed and cannot be installed without root: apt-get install nginx")
    app = tmp_path_factory.mktemp("app") / "app.py"
    app.write_text(textwrap.dedent(APP))
    port, *replicas = free_ports(4)[:3]  # the fourth is --redis's (BASE_PORT + REPLICAS)
    process = subprocess.Popen(
        [str(SCRIPT), *flags, "-n", "2", "-p", str(port), "-b", str(replicas[0]), "-a", str(app)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []

    def read():
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any("ready" in line for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = "".join(lines)
            if "could not install nginx" in output:
                pytest.skip(f"nginx could not be installed: {output.strip()[-300:]}")
            pytest.fail(f"scale_out.sh did not get ready:\n{output}")
        time.sleep(0.2)
    yield {"port": port, "replicas": replicas, "process": process, "output": lines}
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(60)
    for p in (port, *replicas):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"port {p} still served after scale_out.sh stopped"


def get(port: int, path: str, cookie: str | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def affinity_cookie(response) -> str:
    for name, value in response.getheaders():
        if name.lower() == "set-cookie" and value.startswith("fme_upstream="):
            return value.split(";")[0]
    raise AssertionError(f"no affinity cookie in {response.getheaders()}")


def test_each_client_stays_on_one_replica_and_clients_spread(cluster):
    port, replicas = cluster["port"], cluster["replicas"]
    seen = set()
    for _ in range(16):
        first = get(port, "/_stcore/health")
        assert first.status == 200
        cookie = affinity_cookie(first)
        upstreams = {get(port, "/_stcore/health", cookie).getheader("X-Upstream") for _ in range(4)}
        assert len(upstreams) == 1, f"one client was sent to several replicas: {upstreams}"
        again = get(port, "/_stcore/health", cookie)
        assert all("fme_upstream" not in v for k, v in again.getheaders() if k.lower() == "set-cookie")
        seen |= upstreams
    assert seen == {f"127.0.0.1:{p}" for p in replicas}, f"16 clients all landed on {seen}"


def test_websocket_upgrade_reaches_the_clients_replica(cluster):
    port = cluster["port"]
    cookie = affinity_cookie(get(port, "/_stcore/health"))
    upstream = get(port, "/_stcore/health", cookie).getheader("X-Upstream")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            (
                "GET /_stcore/stream HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: streamlit\r\n"
                f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, f"connection closed during the handshake: {head!r}"
            head += chunk
    status, *header_lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    assert " 101 " in status, status
    assert headers.get("x-upstream") == upstream


def test_browser_sessions_render_and_rerun_through_nginx(cluster):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.skip("no /usr/bin/chromium: run 'make browser'")
    port = cluster["port"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(2):
                context = browser.new_context()
                page = context.new_page()
                upstreams = set()
                # The first request (the page, identical on every replica) is routed by address and
                # sets the affinity cookie; everything after it must reach one replica.
                page.on(
                    "response",
                    lambda r, seen=upstreams: (
                        "fme_upstream=" in r.request.all_headers().get("cookie", "")
                        and seen.add(r.headers.get("x-upstream"))
                    ),
                )
                page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
                rendered = page.get_by_text("replica port").inner_text(timeout=60_000)
                page.get_by_role("button", name="Click").click()
                page.get_by_text("clicks 1").wait_for(timeout=30_000)
                replica = rendered.split()[-1]
                assert upstreams - {None} == {f"127.0.0.1:{replica}"}, (rendered, upstreams)
                context.close()
        finally:
            browser.close()


def replica_pid(port: int) -> int:
    """The streamlit process that scale_out.sh started for ``port`` (found by its command line)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"run" in argv and str(port).encode() in argv and any(b"streamlit" in a for a in argv):
                return int(entry)
    raise AssertionError(f"no replica process for port {port}")


def test_clients_of_a_dead_replica_move_to_a_live_one_and_the_replica_restarts(cluster):
    """Runs last: it kills a replica. Its sessions are gone, but their browsers reconnect elsewhere."""
    port, replicas = cluster["port"], cluster["replicas"]
    cookies = {}
    while len(cookies) < 2:
        cookie = affinity_cookie(get(port, "/_stcore/health"))
        cookies.setdefault(get(port, "/_stcore/health", cookie).getheader("X-Upstream"), cookie)
    victim = replicas[0]
    os.kill(replica_pid(victim), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", victim)) != 0:
                break
        time.sleep(0.2)
    moved = get(port, "/_stcore/health", cookies[f"127.0.0.1:{victim}"])
    assert moved.status == 200 and moved.getheader("X-Upstream").endswith(f":{replicas[1]}")
    stayed = get(port, "/_stcore/health", cookies[f"127.0.0.1:{replicas[1]}"])
    assert stayed.getheader("X-Upstream") == f"127.0.0.1:{replicas[1]}"
    deadline = time.monotonic() + 90
    while True:  # scale_out.sh starts it again
        try:
            if get(victim, "/_stcore/health").status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the killed replica was not restarted"
        time.sleep(0.5)


def _environment(port: int) -> dict[str, str]:
    """The environment of the streamlit process serving ``--server.port port``."""
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"streamlit" in b" ".join(cmdline) and str(port).encode() in cmdline:
                pairs = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        except (OSError, ValueError):
            continue
    raise AssertionError(f"no streamlit process on port {port}")


def test_with_redis_both_replicas_share_one_room_store(redis_cluster):
    from explorer.rooms import open_store

    ready = next(line for line in redis_cluster["output"] if "scale_out: ready" in line)
    urls = {_environment(p).get("FME_ROOMS_URL") for p in redis_cluster["replicas"]}
    assert len(urls) == 1 and None not in urls, urls
    (url,) = urls
    assert url.startswith("redis://127.0.0.1:") and url in ready
    store = open_store(url)  # what one replica writes, the other reads: the same Redis
    code, _ = store.create_room()
    assert open_store(url).room(code).code == code
    store.close()
