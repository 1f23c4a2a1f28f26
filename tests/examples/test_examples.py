"""The example scripts run as a user runs them."""

import ast
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
        [sys.executable, os.path.join(ROOT, "examples", "export_digits.py"), "--epochs", "4", "--out", str(tmp_path / "m")],
        capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    accuracy = float(line.split("test accuracy ")[1].split(";")[0])
    served_accuracy = float(line.split("raw pixels ")[1].split(";")[0])
    difference = float(line.split("= ")[-1])
    assert accuracy > 0.9 and difference < 1e-5, line
    assert served_accuracy == pytest.approx(accuracy, abs=1e-4), line  # raw uint8 pixels, no client scaling
    assert "'probabilities', 'top_k_class_names', 'top_k_indices', 'top_k_scores'" in result.stdout
    assert os.path.exists(tmp_path / "m" / "1" / "saved_model.pb")
    assert os.path.exists(tmp_path / "m" / "1" / "assets.extra" / "tf_serving_warmup_requests")


@requires_tensorflow
@pytest.mark.slow
def test_preset_in_a_script_example():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "preset_in_a_script.py"), "--epochs", "4"],
        capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("sgd_warmup_cosine: SGD with momentum 0.9")
    assert lines[-2] == "recipe round trip through recipe.yaml: identical"
    first, second = (float(w) for w in lines[-1].split() if w[0].isdigit())
    assert first > 0.85 and second > 0.85, lines[-1]


@requires_tensorflow
@pytest.mark.slow
def test_warmup_plateau_cosine_example():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "warmup_plateau_cosine.py"), "--epochs", "6"],
        capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    rates = ast.literal_eval(lines[-2].split(": ", 1)[1])  # a printed list of floats
    # After epoch 1 of a 2-epoch warmup to 0.05 the rate is halfway; after
    # epoch 2 it has reached the cosine's start; then it decays.
    assert rates[0] == pytest.approx(0.025, abs=1e-5) and rates[1] == pytest.approx(0.05, abs=1e-5)
    assert all(b <= a for a, b in zip(rates[1:], rates[2:]))
    assert float(lines[-1].split()[-1]) > 0.85
