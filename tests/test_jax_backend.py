"""CI's JAX job: the schedule and optimizer tests again, under `KERAS_BACKEND=jax`.

Keras picks its backend once per process, so the job runs in a child pytest
process. It is part of the README's single test command.
"""

import os
import subprocess
import sys

import keras
import pytest

from tests.harness import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What runs on JAX: each plug-in's math against NumPy (optimizers, schedules,
# layers, initializers, losses) and, in the compatibility matrix, every
# optimizer, callback, rate kind and wrapper fitted and reloaded mid-training
# from a .keras checkpoint; self-healing's backend paths. The fit-level suites
# (tests/optimizers/test_training.py, tests/schedules/test_training.py,
# tests/layers/test_integration.py) and the argument and config checks (Python
# before any backend op) run on TensorFlow only: each JAX fit compiles anew and
# the job shares the 2-core suite's budget.
JAX_SUITES = ["tests/compat", "tests/optimizers/test_math.py", "tests/optimizers/test_rectified_adam.py",
              "tests/schedules/test_formulas.py", "tests/schedules/test_cyclical.py",
              "tests/layers/test_math.py", "tests/layers/test_standardize.py",
              "tests/layers/test_filter_response_normalization.py", "tests/layers/test_weight_normalization.py",
              "tests/initializers", "tests/losses", "tests/callbacks/test_self_healing_backends.py"]

# Also left to the TensorFlow run: a .keras file loaded in a fresh process
# (each one a JAX start-up; a checkpoint reloaded mid-training on JAX is the
# compat matrix's keras_checkpoint cell) and folding a weight-normalized
# kernel (NumPy).
JAX_DESELECT = " and ".join(f"not {name}" for name in (
    "fresh_process", "save_load_and_resume", "bad_arguments", "bad_values", "wrong_types", "config_roundtrip",
    "remove_folds"))


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this is the job that starts the JAX run")
def test_schedules_and_optimizers_pass_on_the_jax_backend():
    import jax  # noqa: F401  (the test extra installs JAX's CPU build)

    env = subprocess_env()
    env["KERAS_BACKEND"] = "jax"
    env["JAX_PLATFORMS"] = "cpu"
    missing = [s for s in JAX_SUITES if not os.path.exists(os.path.join(ROOT, s))]
    assert not missing, f"JAX_SUITES names files that are gone: {missing}"
    suites = JAX_SUITES
    result = subprocess.run(
        # In this process alone: the job starts first (tests/conftest.py), beside the main run's
        # other worker, which keeps the second core busy.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
         "-k", JAX_DESELECT, *suites],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    # Exit code 5 (no tests collected) fails here like any other failure.
    assert result.returncode == 0, f"JAX job failed ({summary}):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
