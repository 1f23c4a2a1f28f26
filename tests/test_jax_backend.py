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
# tests/layers/test_integration.py (fit, jit, mixed precision, fresh-process files) runs on TensorFlow only:
# compiling its conv fits on JAX costs minutes; the layers' math runs on both.
JAX_SUITES = ["tests/schedules", "tests/optimizers", "tests/compat", "tests/layers/test_math.py", "tests/layers/test_standardize.py", "tests/layers/test_filter_response_normalization.py", "tests/layers/test_weight_normalization.py", "tests/initializers", "tests/losses",
              "tests/callbacks/test_self_healing_backends.py"]

# Left to the TensorFlow run: a .keras file loaded in a fresh process (each one
# a JAX start-up; a checkpoint reloaded mid-training on JAX is the compat
# matrix's keras_checkpoint cell), the optimizer bake-off's bookkeeping, the
# argument and config checks (Python before any backend op), each optimizer
# under mixed_float16 alone (the compat matrix pairs every optimizer with
# mixed_float16 on JAX too) and folding a weight-normalized kernel (NumPy).
JAX_DESELECT = " and ".join(f"not {name}" for name in (
    "fresh_process", "save_load_and_resume", "bakeoff", "bad_arguments", "bad_values", "wrong_types",
    "config_roundtrip", "test_mixed_float16", "remove_folds"))


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this is the job that starts the JAX run")
def test_schedules_and_optimizers_pass_on_the_jax_backend():
    import jax  # noqa: F401  (the test extra installs JAX's CPU build)

    env = subprocess_env()
    env["KERAS_BACKEND"] = "jax"
    env["JAX_PLATFORMS"] = "cpu"
    suites = [s for s in JAX_SUITES if os.path.exists(os.path.join(ROOT, s))]
    assert suites, "no schedule or optimizer tests found"
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
