"""kt.preflight on real (tiny) digits setups: broken ones named, healthy clean,
the user's model, optimizer and random state untouched."""

import random

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kerastoolkit as kt
from kerastoolkit.callbacks import Preflight
from tests.conftest import requires_tensorflow

FAST = dict(num_examples=256, overfit_steps=100, signal_steps=40)


def digits():
    d = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(d.target))  # the file's labels cycle 0..9: break that
    return (d.data[idx] / 16.0 - 0.3).astype("float32"), d.target[idx].astype("int32")


def mlp(out_activation=None):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(10, activation=out_activation)])


def compile_(model, from_logits=True):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    return model


@requires_tensorflow
def test_healthy_setup_is_clean_and_leaves_everything_bit_identical():
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(mlp())
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # non-zero Adam state
    weights = [w.copy() for w in model.get_weights()]
    opt = [np.array(keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables]
    py_state, np_state = random.getstate(), np.random.get_state()
    keras_draw_state = kt._keras_compat.global_seed_state()
    report = kt.preflight.check(model, (x, y), shuffle=True, **FAST)
    assert report.codes == [], str(report)
    assert "healthy, no findings" in str(report)
    assert {"inputs", "labels", "overfit_one_batch", "learnable_signal",
            "input_independent_baseline", "gradients_and_activations"} <= set(report.checks)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    for v, b in zip(model.optimizer.variables, opt):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    np.testing.assert_array_equal(kt._keras_compat.global_seed_state(), keras_draw_state)


@requires_tensorflow
@pytest.mark.parametrize("setup,expected", [
    ("labels_misaligned_by_one", "no_signal"),
    ("softmax_with_from_logits", "logits_mismatch"),
    ("one_nan_in_data", "non_finite_inputs"),
    ("sorted_data", "data_order"),
])
def test_broken_setups_are_named_by_the_right_check(setup, expected):
    x, y = digits()
    keras.utils.set_random_seed(0)
    model, shuffle = compile_(mlp()), True
    if setup == "labels_misaligned_by_one":
        y = np.roll(y, 1)
    elif setup == "softmax_with_from_logits":
        model = compile_(mlp("softmax"))
    elif setup == "one_nan_in_data":
        x = x.copy()
        x[5, 20] = np.nan
    elif setup == "sorted_data":
        order = np.argsort(y, kind="stable")
        x, y, shuffle = x[order], y[order], False
    report = kt.preflight.check(model, (x, y), shuffle=shuffle, **FAST)
    assert expected in report.codes, str(report)
    data = report.to_dict()
    assert [f["code"] for f in data["findings"]] == report.codes


def test_labels_out_of_range_stop_the_run_from_the_callback():
    from kerastoolkit.callbacks.preflight import PreflightError

    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(mlp())
    before = [w.copy() for w in model.get_weights()]
    cb = Preflight((x[:256], y[:256] + 1), verbose=0)
    with pytest.raises(PreflightError, match="labels_out_of_range") as caught:
        model.fit(x[:256], y[:256] + 1, epochs=3, verbose=0, callbacks=[cb])
    assert caught.value.report is cb.report
    ev = [f for f in cb.report.findings if f.code == "labels_out_of_range"][0].evidence
    assert ev["max"] == 10 and ev["outputs"] == 10
    for a, b in zip(model.get_weights(), before):  # not a single step was taken
        np.testing.assert_array_equal(a, b)
    assert Preflight.from_config(cb.get_config()).stop_on == "error"
    with pytest.raises(ValueError, match="Received: stop_on='never'"):
        Preflight((x, y), stop_on="never")
    with pytest.raises(ValueError, match="Received: model="):
        kt.preflight.check(mlp(), (x, y))
