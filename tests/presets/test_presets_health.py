"""Every preset that lists digits trains healthy on digits, by the toolkit's own diagnosis.

`kerastoolkit train --preset P` as the quick start runs it (the recipe's own
epochs and batch size, else digits' 30 and 32; 10% held out; early stopping
and self-healing on), in this process to save the start-up of a new one
(the installed command is tested in tests/test_console_script.py). The
preflight has tests of its own and is off here. The presets that list
Fashion-MNIST are checked there in BENCHMARKS.md (issue 23, item 6): a run
of theirs takes minutes.
"""

import contextlib
import io
import json
import os

import pytest

import kerastoolkit as kt
from kerastoolkit import cli
from tests.conftest import requires_tensorflow

DIGITS_PRESETS = [name for name in kt.presets.names() if kt.presets.get(name).config["dataset"] == "digits"]


def test_the_presets_that_claim_digits_are_all_checked():
    # The nine of issue 23, item 6: none may drop out of the check below unnoticed.
    assert set(DIGITS_PRESETS) >= {"adam", "karpathy_adam", "sgd_warmup_cosine", "snapshot_ensemble",
                                   "sgd_momentum_step", "goyal_large_batch", "cosine_warmup_adamw", "swats",
                                   "lookahead_adam"}


@requires_tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS_PRESETS)
def test_each_digits_preset_trains_healthy_through_the_command(name, tmp_path):
    out = str(tmp_path / "models")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["train", "--preset", name, "--seed", "0", "--no-preflight", "--out", out, "--verbose", "0"])
    assert status == 0, printed.getvalue()[-3000:]
    version = os.path.join(out, "1")
    with open(os.path.join(version, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(version, "assets", "kerastoolkit_metadata.json")) as f:
        metadata = json.load(f)
    # Healthy: no warning and no error. An `info` finding (a rise in the validation loss
    # that early stopping's restored weights leave behind) says the model kept is fine.
    troubles = [f"{f['severity']} {f['code']}: {f['message']}" for f in report["findings"] if f["severity"] != "info"]
    assert not troubles, "\n".join(troubles)
    # Healthy on digits also means accurate: the presets reached 97.2-99.2% in BENCHMARKS.md.
    assert metadata["metrics"]["test_accuracy"] >= 0.96, metadata["metrics"]
