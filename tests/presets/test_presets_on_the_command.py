"""Presets as `kerastoolkit train --preset P` runs them: their own sizes, an export.

Whether every preset trains healthy (by the toolkit's own diagnosis) on each
dataset it lists takes a full run per preset: tests/presets/test_presets_health.py
checks it on digits; the Fashion-MNIST runs (3-10 epochs of 60,000 images) are
`benchmarks/presets_health.py`'s, with their results in BENCHMARKS.md. Here
the new presets train briefly.
"""

import argparse
import json
import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from kerastoolkit import cli
from kerastoolkit.cli import train as cli_train
from tests.conftest import requires_tensorflow

NEW_PRESETS = ["accurate", "fast_float32"]


def _args(**flags):
    defaults = {"dataset": "digits", "epochs": None, "batch_size": None, "validation_fraction": 0.1,
                "warmup_epochs": None, "snapshots": None}
    return argparse.Namespace(**dict(defaults, **flags))


def test_a_recipes_own_epochs_and_batch_size_are_used_unless_given():
    fast = kt.presets.get("fast")  # 5 epochs at batch 128, checked on Fashion-MNIST
    assert fast.config["dataset"] != "digits"
    assert cli_train._sizes(fast, _args()) == (5, 128)
    assert cli_train._sizes(fast, _args(epochs=3)) == (3, 128)
    assert cli_train._sizes(fast, _args(batch_size=16)) == (5, 16)
    assert cli_train._sizes(kt.presets.get("adam"), _args()) == (30, 32)  # no sizes of its own: the dataset's
    assert cli_train._sizes(kt.presets.get("adam"), _args(dataset="fashion_mnist")) == (10, 128)


def test_a_recipes_own_sizes_that_do_not_fit_are_one_line(capsys):
    fast = kt.presets.get("fast")
    # 0.93 of digits' 1437 examples held out leaves 101: fewer than the recipe's batch of 128.
    assert cli_train._sizes(fast, _args(validation_fraction=0.93)) == 2
    assert "preset 'fast' trains with batches of 128, more than the 101 training examples" in capsys.readouterr().err
    # A warmup as long as the recipe's own 5 epochs (the dataset's 30 would allow it).
    assert cli_train._sizes(fast, _args(warmup_epochs=5)) == 2
    err = capsys.readouterr().err
    assert "argument --warmup-epochs: must be fewer than the number of epochs (5, preset 'fast''s own), got 5" in err


@requires_tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_PRESETS)
def test_each_new_preset_trains_and_exports_on_digits(name, tmp_path):
    out = str(tmp_path / "models")
    # Preflight is tested on its own (tests/preflight): here it would double the time of one epoch.
    assert cli.main(["train", "--preset", name, "--epochs", "1", "--no-preflight", "--out", out, "--verbose", "0"]) == 0
    version = os.path.join(out, "1")
    with open(os.path.join(version, "assets", "kerastoolkit_metadata.json")) as f:
        metadata = json.load(f)
    recipe = kt.presets.get(name)
    assert metadata["epochs"] == 1 and metadata["batch_size"] == recipe.config["batch_size"]
    model = keras.saving.load_model(os.path.join(version, "model.keras"))
    # The recipe's own augmentation settings reach the model: `accurate` only flips, which
    # does not suit digits (a geometric policy without its settings would rotate and shift them).
    expected = kt.data.augmentation_for("digits", recipe.config["augmentation"], raw=True,
                                        **recipe.config["augmentation_options"])
    assert expected is None or not expected.layers
    assert "augmentation" not in [layer.name for layer in model.layers] and metadata["augmentation"] is None
    x_test, _ = kt.data.load("digits", "test", as_numpy=True, raw=True)
    np.testing.assert_allclose(kt.export.load(version)(x_test), model.predict(x_test, verbose=0), atol=1e-5)


def test_sgd_momentum_step_decays_weights_as_he_et_al():
    # He et al. add 1e-4·w to every gradient (Caffe/Torch weight decay): an L2
    # penalty (1e-4 / 2)·Σw². Decoupled 1e-4 (w ← w − η·1e-4·w) is ten times weaker
    # under momentum 0.9, where the gradient's term accumulates to 1/(1 − 0.9) times.
    import tensorflow as tf

    recipe = kt.presets.get("sgd_momentum_step")
    assert recipe.config["weight_decay"] is None  # not decoupled on top
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False, activation="softmax")])
    recipe.compile(model, steps_per_epoch=1, epochs=4, batch_size=128)
    kernel = model.layers[0].kernel
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    np.testing.assert_allclose(tape.gradient(penalty, kernel).numpy(), 1e-4 * kernel.numpy(), rtol=1e-5)
