"""The project as a package: what ``pip install .`` builds, and its two commands in a fresh venv.

The wheel is built from the files a clone has (``git ls-files``, uncommitted ones included), so a
stale ``build/`` folder cannot hide a missing file. The venv is made with ``--without-pip`` and sees
this venv's packages (torch, streamlit, ...) through a ``.pth`` file: nothing is downloaded, and the
project itself can only come from the wheel.
"""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from explorer import serve

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"fmcore": "fmcore.cli:main", "flow-matching-explorer": "explorer.serve:main"}
APP_FILES = [
    "streamlit_app.py",
    ".streamlit/config.toml",
    *(f"pages/{page.name}" for page in sorted((ROOT / "pages").glob("*.py"))),
]
USAGE_STATS_NOTICE = "Collecting usage statistics"  # printed by a headless server that gathers them
START_TIMEOUT_S = 60
STALE_MODULE = "explorer/removed_module.py"
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", "--no-input"]


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of a user with no Streamlit settings of their own and no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("STREAMLIT_")}
    return env | {"HOME": str(home)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- the launcher


def test_the_launcher_runs_the_checkouts_app_and_passes_the_rest_to_streamlit(capsys):
    assert serve.app_dir() == ROOT  # no explorer/app/ in a checkout: the files at the top are the app
    assert serve.main(["--server.port", "8600", "--dry-run", "--theme.base=light"]) == 0
    assert shlex.split(capsys.readouterr().out) == [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "streamlit_app.py"),
        "--server.port",
        "8600",
        "--theme.base=light",
    ]


def test_the_launcher_prefers_the_installed_app(tmp_path, monkeypatch):
    installed = tmp_path / "app"
    installed.mkdir()
    (installed / serve.SCRIPT).write_text("")
    monkeypatch.setattr(serve, "APP_DIRS", (installed, ROOT))
    assert serve.command()[-1] == str(installed / serve.SCRIPT)


def test_a_missing_app_is_a_plain_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "APP_DIRS", (tmp_path / "app", tmp_path))
    assert serve.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the app is missing") and "pip install ." in err


def test_the_launcher_imports_no_streamlit():
    code = "import sys, explorer.serve; print(sorted({'streamlit', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel .`` builds from a copy of the clone's files."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is still listed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    stale = source / "build" / "lib" / STALE_MODULE  # left by an earlier build; its source is gone
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("flow_matching_explorer-*.whl")
    return built


def _dist_info(archive: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{name}")]
    return archive.read(path).decode()


@pytest.mark.slow
def test_the_wheel_holds_both_packages_the_lessons_and_the_server_settings(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        config = archive.read("explorer/app/.streamlit/config.toml")
    modules = {
        str(p.relative_to(ROOT)) for package in ("fmcore", "explorer") for p in (ROOT / package).rglob("*.py")
    }
    shipped = {name for name in names if name.endswith(".py") and not name.startswith("explorer/app/")}
    assert shipped == modules, (
        f"missing {sorted(modules - shipped)}, not in the source {sorted(shipped - modules)}"
    )
    app = {f"explorer/app/{name}" for name in APP_FILES}
    assert app <= names, f"app files missing from the wheel: {sorted(app - names)}"
    assert config == (ROOT / ".streamlit/config.toml").read_bytes()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"fmcore", "explorer"}


@pytest.mark.slow
def test_the_wheel_requires_exactly_requirements_txt_and_declares_both_commands(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(_dist_info(archive, "METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(_dist_info(archive, "entry_points.txt"))
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert metadata.get_all("Requires-Dist") == required
    assert "torch==2.13.0" in required
    assert dict(entry_points["console_scripts"]) == ENTRY_POINTS


# ----------------------------------------------------------------------------- a fresh venv


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed; this venv's site-packages lie behind its own."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "shared_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return root


def _run(args, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=_clean_env(cwd), capture_output=True, text=True, timeout=120, **kwargs
    )


@pytest.mark.slow
def test_the_venv_imports_the_installed_packages_not_the_checkout(venv, tmp_path):
    code = "import explorer, fmcore; print(explorer.__file__); print(fmcore.__file__)"
    out = _run([venv / "bin" / "python", "-c", code], tmp_path, check=True).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in out), out


@pytest.mark.slow
def test_the_fmcore_command_is_python_m_fmcore(venv, tmp_path):
    command = _run([venv / "bin" / "fmcore", "--help"], tmp_path)
    module = _run([venv / "bin" / "python", "-m", "fmcore", "--help"], tmp_path)
    assert command.returncode == module.returncode == 0
    assert command.stdout == module.stdout and "{train,sample}" in command.stdout


@pytest.mark.slow
def test_the_explorer_command_runs_the_installed_app(venv, tmp_path):
    out = _run([venv / "bin" / "flow-matching-explorer", "--dry-run", "--server.port", "8765"], tmp_path)
    assert out.returncode == 0, out.stderr
    python, *streamlit, script, flag, port = shlex.split(out.stdout)
    assert Path(python).parent == venv / "bin" and streamlit == ["-m", "streamlit", "run"]
    app = Path(script).parent
    assert app.is_relative_to(venv) and app.parts[-2:] == ("explorer", "app")
    assert [flag, port] == ["--server.port", "8765"]
    for name in APP_FILES:  # the lessons and the settings lie beside the script, as in the checkout
        assert (app / name).read_bytes() == (ROOT / name).read_bytes(), name


def _serve_once(args, cwd: Path) -> str:
    """Start a server on a free port, wait until /_stcore/health says ok, stop it; its output."""
    port = _free_port()
    server = subprocess.Popen(
        [*args, "--server.port", str(port)],
        cwd=cwd,
        env=_clean_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, f"the server exited: {server.communicate()[0]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                assert time.monotonic() < deadline, f"no healthy server on port {port} in {START_TIMEOUT_S} s"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    return output


@pytest.mark.slow
def test_the_explorer_command_serves_with_the_projects_settings_from_any_directory(venv, tmp_path):
    # A headless server that gathers usage statistics says so on start; the project's config.toml
    # turns that off. From a directory with no .streamlit/ of its own, only the installed one can.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "app.py").write_text("import streamlit\n")
    assert USAGE_STATS_NOTICE in _serve_once(
        [venv / "bin" / "python", "-m", "streamlit", "run", "app.py"], bare
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    output = _serve_once([venv / "bin" / "flow-matching-explorer"], elsewhere)
    assert USAGE_STATS_NOTICE not in output and "Local URL" in output, output
