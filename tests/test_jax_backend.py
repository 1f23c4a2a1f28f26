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
# matrix's keras_checkpoint cell), and the optimizer bake-off's bookkeeping.
JAX_DESELECT = "not fresh_process and not save_load_and_resume and not bakeoff_ranks"


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
        # Two worker processes: this job runs last, when the main run's other worker is done.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
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
