"""The example scripts run as a user runs them."""

import os
import subprocess
import sys

import pytest

from tests.conftest import requires_tensorflow
from tests.harness import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@requires_tensorflow
@pytest.mark.slow
def test_export_digits_example(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "export_digits.py"), "--epochs", "8", "--out", str(tmp_path / "m")],
        capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    accuracy = float(line.split("test accuracy ")[1].split(";")[0])
    difference = float(line.split("= ")[-1])
    assert accuracy > 0.9 and difference < 1e-5, line
    assert os.path.exists(tmp_path / "m" / "1" / "saved_model.pb")
