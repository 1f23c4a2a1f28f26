"""The compatibility matrix (issue 13): every cell works or fails loudly.

The cells (`cells.pairwise`, a covering design over optimizer x rate x
callback x wrapper x persistence) run once per module: in this process the
whole run (recording the rate before every step) and the checkpoint or the
killed run; then ONE child process continues every cell from its `.keras`
checkpoint (or its `BackupAndRestore` backup). Each test then checks a cell:

- the rate the optimizer applied at each of its steps equals the NumPy
  expectation of the callback's formula over the rate (`cells.expected_rate`);
- the continued run ends with the same weights as the uninterrupted run, or,
  for a refused combination (`cells.REFUSED`), the continuation raised an
  error naming it.

The backend is the process's: the JAX job (`tests/test_jax_backend.py`) runs
the same cells under `KERAS_BACKEND=jax`.
"""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.compat import cells
from tests.harness import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL_PAIRS = cells.pairwise(cells.FACTORS)
# KERASTOOLKIT_COMPAT=pairs: the 64 cells covering every pair of the five
# factors (about 4 minutes on the 2-core CI machine); the default, =values:
# the 8 of them in which every value of every factor appears, on each backend
# (so every pair with the backend, the sixth factor, is covered), within the
# suite's time budget.
_DESIGN = os.environ.get("KERASTOOLKIT_COMPAT", "values")
CELLS = ALL_PAIRS if _DESIGN == "pairs" else cells.each_value(ALL_PAIRS, cells.FACTORS)


def test_the_design_covers_every_pair():
    names = list(cells.FACTORS)
    for a, b in itertools.combinations(names, 2):
        seen = {(c[a], c[b]) for c in ALL_PAIRS}
        assert seen == set(itertools.product(cells.FACTORS[a], cells.FACTORS[b])), (a, b)
    assert len(ALL_PAIRS) == len({cells.cell_id(c) for c in ALL_PAIRS})
    assert cells.pairwise(cells.FACTORS) == ALL_PAIRS  # deterministic
    few = cells.each_value(ALL_PAIRS, cells.FACTORS)
    for name, values in cells.FACTORS.items():
        assert {c[name] for c in few} == set(values)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    results, spec = {}, []
    for cell in CELLS:
        workdir = str(root / cells.cell_id(cell))
        os.makedirs(workdir)
        try:
            results[cells.cell_id(cell)] = cells.run_uninterrupted(cell, workdir)
        except Exception as error:  # checked by the cell's test
            results[cells.cell_id(cell)] = {"error": f"{type(error).__name__}: {error}"}
            continue
        spec.append({"cell": cell, "workdir": workdir})
    spec_path = str(root / "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    child = subprocess.run(
        [sys.executable, "-m", "tests.compat.cells", spec_path],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=900,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    for item in spec:
        result = results[cells.cell_id(item["cell"])]
        error_path = os.path.join(item["workdir"], "error.txt")
        if os.path.exists(error_path):
            with open(error_path) as f:
                result["continuation_error"] = f.read()
        else:
            with np.load(os.path.join(item["workdir"], "continued.npz")) as saved:
                result["continued"] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return results


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=[cells.cell_id(c) for c in CELLS])
def test_cell(matrix, cell):
    result = matrix[cells.cell_id(cell)]
    assert "error" not in result, result.get("error")
    if cell["callback"] == "lr_finder":  # Smith (2017): geometric sweep, then restored
        expected = [1e-4, 1e-1]  # min_lr·(max_lr/min_lr)^(i/(n−1)), n = 2 steps
        np.testing.assert_allclose(result["sweep"], expected, rtol=1e-5)
        assert result["sweep_restored"]
    rates = result["rates"]
    assert len(rates) == cells.EPOCHS * cells.ROWS // cells.BATCH
    for epoch, step, rate in rates:
        np.testing.assert_allclose(
            rate, cells.expected_rate(cell, epoch, step), rtol=2e-5, atol=1e-8,
            err_msg=f"epoch {epoch}, step {step}",
        )
    refused = cells.REFUSED.get((cell["callback"], cell["persistence"]))
    if refused:
        assert refused in result.get("continuation_error", ""), result.get("continuation_error")
        return
    assert "continuation_error" not in result, result["continuation_error"]
    for got, want in zip(result["continued"], result["final"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
