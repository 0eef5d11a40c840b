"""bench/classroom.py, small: five real browser sessions train at once against the real server."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_five_sessions_train_at_once_and_none_fails():
    command = [sys.executable, str(ROOT / "bench" / "classroom.py"), "--sessions", "5", "--seconds", "15"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540)
    report = run.stdout + run.stderr
    assert "sessions failed: 0 / 5" in report, report
    assert run.returncode == 0, report
    assert "did not train" not in report, report
    changes = re.search(r"control change .*?, (\d+) changes", report)
    assert changes and int(changes.group(1)) == 15, report
