"""kt.preflight on real (tiny) digits setups: broken ones named, healthy clean,
the user's model, optimizer, data order and random state untouched."""

import logging
import random
import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kerastoolkit as kt
from kerastoolkit.callbacks import Preflight
from tests.conftest import requires_tensorflow

FAST = dict(num_examples=256, overfit_steps=100, signal_steps=40)


def digits(raw=False):
    d = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(d.target))  # the file's labels cycle 0..9: break that
    x = d.data[idx].astype("float32")
    return (x if raw else x / 16.0 - 0.3).astype("float32"), d.target[idx].astype("int32")


def mlp(out_activation=None, first=None):
    front = [first] if first is not None else []
    return keras.Sequential([keras.Input((64,)), *front, keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(10, activation=out_activation)])


def compile_(model, from_logits=True, optimizer=None, loss=None):
    model.compile(optimizer or keras.optimizers.Adam(1e-3),
                  loss or keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    return model


def _state(model):
    return ([w.copy() for w in model.get_weights()],
            [np.array(keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables])


def _assert_same_state(model, state):
    weights, optimizer = state
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    for v, b in zip(model.optimizer.variables, optimizer):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)


@requires_tensorflow
def test_healthy_setup_is_clean_and_leaves_everything_bit_identical():
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(mlp())
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # non-zero Adam state
    state = _state(model)
    py_state, np_state = random.getstate(), np.random.get_state()
    keras_draw_state = kt._keras_compat.global_seed_state()
    report = kt.preflight.check(model, (x, y), shuffle=True, **FAST)
    assert report.codes == [], str(report)
    assert "healthy, no findings" in str(report)
    assert {"inputs", "labels", "optimizer_trial", "overfit_one_batch", "learnable_signal",
            "input_independent_baseline", "gradients_and_activations"} <= set(report.checks)
    _assert_same_state(model, state)
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


# Only the optimizer is wrong: the model and data are the healthy ones, so
# the reference-Adam checks (overfit, signal) must stay quiet and the trial
# must name the optimizer.
OPTIMIZER_ONLY = {
    "rate_far_too_high": (lambda: keras.optimizers.SGD(30.0), ("optimizer_explodes", "optimizer_nan")),
    "rate_far_too_low": (lambda: keras.optimizers.SGD(1e-7), ("optimizer_flat",)),
    "schedule_zero_at_step_0": (
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1000)),
        ("optimizer_flat",)),
    "clipping_zeroes_updates": (lambda: keras.optimizers.Adam(1e-3, clipvalue=1e-12), ("optimizer_flat",)),
}


@requires_tensorflow
@pytest.mark.parametrize("setup", sorted(OPTIMIZER_ONLY))
def test_optimizer_only_broken_setups_are_named_with_their_numbers(setup):
    make, expected = OPTIMIZER_ONLY[setup]
    x, y = digits()
    keras.utils.set_random_seed(0)
    model = compile_(mlp(), optimizer=make())
    state = _state(model)
    report = kt.preflight.check(model, (x, y), **FAST)
    codes = [c for c in report.codes if c.startswith("optimizer_")]
    assert len(codes) == 1 and codes[0] in expected, str(report)
    # the data and the model are fine: the reference checks say nothing
    assert not {"cannot_overfit", "no_signal", "ignores_input"} & set(report.codes), str(report)
    found = [f for f in report.findings if f.code == codes[0]][0]
    ev = found.evidence
    before, after, losses = ev["loss_before"], ev["loss_after"], np.asarray(ev["step_losses"])
    if codes[0] == "optimizer_flat":
        assert abs(after - before) < 0.01 * before
    elif codes[0] == "optimizer_explodes":
        assert max(after, np.nanmax(losses)) > 3 * before
    else:
        assert not np.all(np.isfinite(losses)) or not np.isfinite(after)
    if setup == "schedule_zero_at_step_0":
        # CosineDecay(0.0, ...) is 0 at every step
        assert ev["rates"] == [0.0] * len(losses) and ev["peak_rate"] == 0.0
        assert "learning rate is 0" in found.advice
    if setup == "clipping_zeroes_updates":
        assert "clipvalue=1e-12" in found.advice
    else:  # what to try: the range test's rate, and how to get it
        rate = ev["suggested_learning_rate"]
        assert rate is not None and 1e-7 <= rate <= 10.0
        assert "find_learning_rate(model, x, y, batch_size=32)" in found.advice
    _assert_same_state(model, state)  # the optimizer tried was a copy


def test_a_spike_the_trial_recovers_from_is_not_an_explosion():
    """`kerastoolkit train --preset accurate --dataset fashion_mnist --seed 0` was
    refused: its trial (Adam at the one-cycle's 4e-3 peak, 12 steps) went from
    3.72 to 1.93, with one step at 11.27 (3.03x). A trial that ends clearly lower
    (> 5%) than it began recovered; one that spikes and does not is still an
    explosion."""
    from kerastoolkit.preflight import checks
    from kerastoolkit.preflight import trial

    t = checks.DEFAULT_THRESHOLDS
    recovered = [3.72, 5.1, 11.27, 6.0, 4.1, 3.2, 2.8, 2.5, 2.3, 2.1, 2.0, 1.95]
    assert trial.verdict(3.72, 1.93, recovered, t) is None
    stuck = recovered[:3] + [9.0] * 9
    assert trial.verdict(3.72, 3.70, stuck, t) == "explodes"
    assert trial.verdict(3.72, 12.0, recovered, t) == "explodes"


@requires_tensorflow
def test_the_trial_copies_wrapped_optimizers_under_mixed_precision():
    """`mixed_float16` wraps the optimizer in a LossScaleOptimizer around the
    toolkit's Lookahead around Adam: the copy has the same three layers, the
    rate found is the innermost one's, and the original's state (trained
    before: non-zero moments, a grown loss scale) is left as it was."""
    x, y = digits()
    keras.utils.set_random_seed(0)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = mlp()
        compile_(model, optimizer=kt.optimizers.Lookahead(keras.optimizers.Adam(50.0)))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
        state = _state(model)
        report = kt.preflight.check(model, (x, y), **FAST)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    found = [f for f in report.findings if f.code.startswith("optimizer_")]
    assert found and found[0].code in ("optimizer_explodes", "optimizer_nan"), str(report)
    ev = found[0].evidence
    assert ev["optimizer"] == "Adam (in Lookahead, LossScaleOptimizer)" and ev["learning_rate"] == 50.0
    _assert_same_state(model, state)


@requires_tensorflow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_softmax_in_low_precision_is_a_distribution(policy):
    """Under a mixed policy the softmax is computed and stored in 16 bits: its
    rows sum to 1 only to within a few roundoffs (0.008 in bfloat16, 2^-8
    each). `kerastoolkit train --preset fast` (mixed_bfloat16) was refused as
    `logits_mismatch` for that. Outputs that are not a distribution (a
    sigmoid per class, rows summing to about C/2) still are."""
    x, y = digits()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        softmax = compile_(mlp("softmax"), from_logits=False)
        outputs = keras.ops.convert_to_numpy(softmax(x[:128]))
        sigmoid = compile_(mlp("sigmoid"), from_logits=False)
        reports = [kt.preflight.check(m, (x, y), **FAST) for m in (softmax, sigmoid)]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert str(outputs.dtype) == policy.split("_")[1]
    if policy == "mixed_bfloat16":  # the case that was refused: more than the float32 tolerance of 1e-3
        assert np.abs(outputs.astype("float64").sum(axis=-1) - 1).max() > 1e-3
    assert "logits_mismatch" not in reports[0].codes, str(reports[0])
    assert "logits_mismatch" in reports[1].codes, str(reports[1])


@requires_tensorflow
@pytest.mark.parametrize("setup", ["rescaling_warmup", "standardize_sgd_sorted",
                                   "normalization_label_smoothing"])
def test_healthy_setups_judged_as_fit_will_train_them(setup):
    """In-model scaling of raw pixels, arrays `fit` shuffles though they come
    sorted, a warmup that starts at 0, a momentum SGD, label smoothing (the
    loss cannot go below the smoothed targets' entropy): all clean."""
    x, y = digits(raw=True)
    keras.utils.set_random_seed(0)
    shuffle, loss = True, None
    if setup == "rescaling_warmup":
        front = keras.layers.Rescaling(1 / 16.0)
        optimizer = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=2000, warmup_target=1e-3, warmup_steps=300))
    elif setup == "standardize_sgd_sorted":
        front = kt.layers.Standardize()
        front.adapt(x)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        order = np.argsort(y, kind="stable")
        x, y = x[order], y[order]  # fit(shuffle=True) shuffles them
    else:
        front = keras.layers.Normalization()
        front.adapt(x)
        optimizer = keras.optimizers.Adam(1e-3)
        loss = kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.3, from_logits=True)
    model = compile_(mlp(first=front), optimizer=optimizer, loss=loss)
    report = kt.preflight.check(model, (x, y), shuffle=shuffle, **FAST)
    assert report.codes == [], str(report)


@requires_tensorflow
def test_raw_pixels_into_a_dense_layer_are_still_named():
    x, y = digits(raw=True)
    keras.utils.set_random_seed(0)
    report = kt.preflight.check(compile_(mlp()), (x * 16, y), **FAST)
    found = [f for f in report.findings if f.code == "input_scale"]
    assert found and found[0].evidence["max_abs"] == pytest.approx(256.0), str(report)


@requires_tensorflow
def test_the_default_classifier_on_raw_pixels_has_no_input_scale_finding():
    """What `kerastoolkit train` builds: `kt.layers.Standardize` in front of
    the first convolution, raw 0-16 digits pixels in."""
    x, y = digits(raw=True)
    x = x.reshape(-1, 8, 8, 1)
    keras.utils.set_random_seed(0)
    model = kt.models.default_classifier((8, 8, 1), 10, normalization_data=x)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy())
    report = kt.preflight.check(model, (x, y), **FAST)
    assert "input_scale" not in report.codes and report.errors == [], str(report)


@requires_tensorflow
def test_callback_judges_the_order_fit_uses():
    """Class-sorted arrays: `fit` shuffles them by default (no finding); told
    `shuffle=False`, the callback stops the run with `data_order`."""
    from kerastoolkit.callbacks.preflight import PreflightError

    x, y = digits()
    order = np.argsort(y, kind="stable")
    x, y = x[order][:600], y[order][:600]
    keras.utils.set_random_seed(0)
    model = compile_(mlp())
    cb = Preflight((x, y), verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert cb.report.codes == [], str(cb.report)
    model = compile_(mlp())
    with pytest.raises(PreflightError, match="data_order") as caught:
        model.fit(x, y, epochs=1, batch_size=50, verbose=0, shuffle=False,
                  callbacks=[Preflight((x, y), shuffle=False, verbose=0)])
    # the batch size is fit's, read from its 12 steps per epoch
    order = [f for f in caught.value.report.findings if f.code == "data_order"][0]
    assert order.evidence["batches"] == 600 // 50


@requires_tensorflow
def test_recipe_fit_tries_the_recipes_own_optimizer_first():
    """`Recipe.fit` runs preflight by default: a rate far too high stops the
    run before its first step; `preflight=False` trains as asked."""
    from kerastoolkit.callbacks.preflight import PreflightError

    x, y = digits()
    recipe = kt.presets.get("adam", learning_rate=30.0, batch_size=32, plateau=None,
                            early_stopping=None)
    keras.utils.set_random_seed(0)
    model = mlp("softmax")  # the recipe compiles for probabilities
    with pytest.raises(PreflightError, match="optimizer_(explodes|nan)") as caught:
        recipe.fit(model, (x[:640], y[:640]), epochs=1, verbose=0)
    found = [f for f in caught.value.report.findings if f.code.startswith("optimizer_")][0]
    assert found.evidence["optimizer"] == "Adam" and found.evidence["learning_rate"] == 30.0
    assert model.optimizer.iterations.numpy() == 0  # not a step was taken
    history = recipe.fit(model, (x[:640], y[:640]), epochs=1, verbose=0, preflight=False)
    assert model.optimizer.iterations.numpy() == 20 and len(history.history["loss"]) == 1


def _kinds(x, y):
    import tensorflow as tf

    def batches():  # a generator, read through a tf.data pipeline
        for start in range(0, len(x), 50):
            yield x[start:start + 50], y[start:start + 50]

    spec = (tf.TensorSpec((None, 64), tf.float32), tf.TensorSpec((None,), tf.int32))
    return {
        "arrays": lambda: (x, y),
        "reshuffling_dataset": lambda: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=3, reshuffle_each_iteration=True).batch(32),
        "generator": lambda: tf.data.Dataset.from_generator(batches, output_signature=spec)
        .rebatch(25).shuffle(24, seed=5, reshuffle_each_iteration=True),
    }


@requires_tensorflow
@pytest.mark.parametrize("kind", ["arrays", "reshuffling_dataset", "generator"])
def test_check_changes_nothing_fit_then_sees(kind):
    """A run with `check` before `fit` trains bit-identical weights to one
    without: the same first-epoch order (fit's permutation of the arrays; the
    seeded reshuffling pipeline's first order), the same weights and
    optimizer state, the same random draws (dropout masks) and global random
    states afterwards."""
    import tensorflow as tf

    x, y = digits()
    x, y = x[:400], y[:400]

    def run(with_check):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.Dense(10)])
        compile_(model)
        data = _kinds(x, y)[kind]()
        if with_check:
            state = _state(model)
            kt.preflight.check(model, data, batch_size=32, **FAST)
            _assert_same_state(model, state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fit: "shuffle is ignored for a dataset"
            if kind == "arrays":
                model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            else:
                model.fit(data, epochs=1, verbose=0)
        draws = (float(tf.random.uniform(())), np.random.rand(), random.random(),
                 float(keras.random.uniform(())))
        return model.get_weights(), draws

    plain, checked = run(False), run(True)
    for a, b in zip(plain[0], checked[0]):
        np.testing.assert_array_equal(a, b)
    assert plain[1] == checked[1]


def test_a_one_shot_generator_is_refused_and_left_whole():
    x, y = digits()
    model = compile_(mlp())
    generator = ((x[i:i + 32], y[i:i + 32]) for i in range(0, 320, 32))
    with pytest.raises(ValueError, match="one-shot iterator"):
        kt.preflight.check(model, generator)
    np.testing.assert_array_equal(next(generator)[1], y[:32])  # nothing was taken


@requires_tensorflow
def test_check_prints_no_tensorflow_warning(capfd):
    """Three checks in a row (a notebook, a test session): every traced
    function is built once per copy, so TensorFlow never warns about
    retracing, and no Python warning about the copies escapes."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    x, y = digits()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for setup in range(3):
                keras.utils.set_random_seed(setup)
                model = compile_(mlp("softmax" if setup == 2 else None))
                kt.preflight.check(model, (x, y), **FAST)
    finally:
        tf_logger.removeHandler(handler)
    err = capfd.readouterr().err
    assert "retracing" not in err and "WARNING:tensorflow" not in err, err
    assert [r.getMessage() for r in records] == []
    assert [str(w.message) for w in caught] == []


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
    with pytest.raises(ValueError, match="Received: shuffle='yes'"):
        Preflight((x, y), shuffle="yes")
    with pytest.raises(ValueError, match="Received: model="):
        kt.preflight.check(mlp(), (x, y))
    with pytest.raises(ValueError, match="Received: trial_steps=1"):
        kt.preflight.check(model, (x, y), trial_steps=1)


class _Checked(Exception):
    """Raised by the stand-in for `kt.preflight.check`: the run stops before `fit`."""


@requires_tensorflow
def test_train_runs_preflight_by_default_on_what_fit_gets(monkeypatch, tmp_path):
    """`kerastoolkit train` checks its model and training split before `fit`
    unless told `--no-preflight`."""
    from kerastoolkit.cli import build_parser
    from kerastoolkit.cli import main

    assert build_parser().parse_args(["train"]).preflight is True
    assert build_parser().parse_args(["train", "--no-preflight"]).preflight is False
    seen = {}

    def check(model, data, **kwargs):
        seen.update(model=model, data=data, kwargs=kwargs)
        raise _Checked

    monkeypatch.setattr(kt.preflight, "check", check)
    with pytest.raises(_Checked):
        main(["train", "--out", str(tmp_path / "out"), "--verbose", "0"])
    x, y = seen["data"]
    assert len(x) == len(y) and seen["model"].optimizer is not None  # compiled: its own optimizer is tried
    assert seen["kwargs"]["shuffle"] is True and seen["kwargs"]["batch_size"] == 32
