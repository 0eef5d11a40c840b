"""``flow-matching-explorer``: serve the app, as ``make run`` does (``make run`` calls this module).

    flow-matching-explorer                       # http://localhost:8501
    flow-matching-explorer --server.port 8600    # every other argument goes to ``streamlit run``
    flow-matching-explorer --dry-run             # print the command instead of running it

The app is ``streamlit_app.py`` with the lessons in ``pages/`` beside it and the server settings in
``.streamlit/config.toml``: at the top of a checkout, or in ``explorer/app/`` where the package is
installed (``setup.py`` copies them there). Streamlit 1.67 reads ``.streamlit/config.toml`` beside
the main script as well as in the working directory, so the settings apply from any directory.

No streamlit import here: ``--help`` and ``--dry-run`` answer at once, and the server is Streamlit's
own command line, which replaces this process (Ctrl-C and signals reach it directly).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["APP_DIRS", "SCRIPT", "app_dir", "command", "main"]

SCRIPT = "streamlit_app.py"
APP_DIRS = (Path(__file__).resolve().parent / "app", Path(__file__).resolve().parents[1])
"""Where the app may be, first match wins: the installed copy, then the top of a checkout."""


def app_dir() -> Path:
    """The folder holding ``streamlit_app.py``, ``pages/`` and ``.streamlit/config.toml``."""
    for folder in APP_DIRS:
        if (folder / SCRIPT).is_file():
            return folder
    raise FileNotFoundError(
        f"the app is missing: no {SCRIPT} in {' or '.join(map(str, APP_DIRS))}; reinstall the package (pip install .)"
    )


def command(streamlit_args: Sequence[str] = ()) -> list[str]:
    """The ``streamlit run`` command line that serves the app, with ``streamlit_args`` after it."""
    return [sys.executable, "-m", "streamlit", "run", str(app_dir() / SCRIPT), *streamlit_args]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flow-matching-explorer",
        description="Serve the Flow Matching Explorer (the Playground and the lessons) with Streamlit.",
        epilog="Any other argument is passed to 'streamlit run', e.g. --server.port 8600 "
        "(see 'streamlit run --help').",
        allow_abbrev=False,
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, streamlit_args = _parser().parse_known_args(argv)
    try:
        cmd = command(streamlit_args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
