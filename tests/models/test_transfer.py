"""Transfer learning and learning without forgetting on a base trained here (digits)."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt


def old_task_network(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dense(32, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="old_task")(x)
    return keras.Model(inputs, outputs, name="old")


@pytest.fixture(scope="module")
def split():
    """Old task: digits 0-4; new task: digits 5-9 (labels 0-4)."""
    x, y = kt.data.load("digits", as_numpy=True)
    xt, yt = kt.data.load("digits", "test", as_numpy=True)
    old, new = y < 5, y >= 5
    return {
        "old": (x[old], y[old]), "new": (x[new], y[new] - 5),
        "old_test": (xt[yt < 5], yt[yt < 5]), "new_test": (xt[yt >= 5], yt[yt >= 5] - 5),
    }


@pytest.fixture(scope="module")
def trained_base(split, tmp_path_factory):
    model = old_task_network()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*split["old"], batch_size=32, epochs=8, verbose=0)
    path = tmp_path_factory.mktemp("base") / "base.keras"
    model.save(path)
    return path


def accuracy(model, data):
    x, y = data
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def test_learning_without_forgetting_forgets_less_than_fine_tuning(split, trained_base):
    results, models = {}, {}
    for weight in (1.0, 0.0):  # LwF, then plain fine-tuning of the shared layers
        keras.utils.set_random_seed(1)
        old = keras.saving.load_model(trained_base)
        before = accuracy(old, split["old_test"])
        lwf, recorded = kt.models.learning_without_forgetting(old, 5, split["new"][0], old_task_weight=weight)
        # The record is the old head's softened output at T on the new data.
        p = old.predict(split["new"][0], verbose=0).astype("float64")
        q = p ** (1 / 2.0) / np.sum(p ** (1 / 2.0), axis=1, keepdims=True)
        np.testing.assert_allclose(recorded, q, atol=1e-5)
        lwf.compile(keras.optimizers.Adam(2e-2), metrics=["accuracy"])
        lwf.fit(split["new"][0], (split["new"][1], recorded), batch_size=64, epochs=6, verbose=0)
        models[weight] = lwf
        results[weight] = (accuracy(lwf.old_task_model, split["old_test"]), accuracy(lwf.new_task_model, split["new_test"]))
    (lwf_old, lwf_new), (ft_old, ft_new) = results[1.0], results[0.0]
    assert before > 0.95
    assert lwf_old >= before - 0.15, results  # the old task stays close
    assert lwf_old >= ft_old + 0.15, results  # fine-tuning forgets more
    assert lwf_new > 0.85 and ft_new > 0.85, results
    with pytest.raises(ValueError, match="recorded outputs"):
        models[1.0].fit(split["new"][0], split["new"][1], epochs=1, verbose=0)


@pytest.fixture(scope="module")
def conv_base(split, tmp_path_factory):
    """The default digits CNN trained on the old classes (0-4)."""
    keras.utils.set_random_seed(0)
    model = kt.models.default_classifier((8, 8, 1), 5)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(*split["old"], batch_size=32, epochs=5, verbose=0)
    path = tmp_path_factory.mktemp("conv_base") / "base.keras"
    model.save(path)
    return path


def layer_names(model, kind):
    return [layer.name for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.slow
def test_feature_extraction_and_fine_tuning_beat_training_from_scratch(split, conv_base):
    x_new, y_new = split["new"]
    few = np.concatenate([np.flatnonzero(y_new == c)[:3] for c in range(5)])  # 3 examples a class
    x_few, y_few = x_new[few], y_new[few]
    base = keras.saving.load_model(conv_base)
    (flatten,) = layer_names(base, keras.layers.Flatten)
    extractor = kt.models.transfer.feature_extractor(base, flatten)
    assert extractor.output_shape == (None, 8 * 8 * 64) and not extractor.trainable_weights
    keras.utils.set_random_seed(2)
    model = kt.models.transfer.fine_tune(base, 5, learning_rate=1e-2, layer_name=flatten)
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    model.fit(x_few, y_few, batch_size=16, epochs=20, verbose=0)
    extracted = accuracy(model, split["new_test"])
    inner = model.get_layer("base")
    first_conv, second_conv = layer_names(inner, keras.layers.Conv2D)
    bn = inner.get_layer(layer_names(inner, keras.layers.BatchNormalization)[1])
    moving = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    frozen = inner.get_layer(first_conv).kernel.numpy().copy()
    tuned = inner.get_layer(second_conv).kernel.numpy().copy()
    kt.models.transfer.unfreeze(model, second_conv, base_learning_rate_multiplier=0.1, learning_rate=1e-2)
    rates = sorted(float(o.learning_rate.numpy()) for o in model.optimizer.optimizers)
    np.testing.assert_allclose(rates, [1e-3, 1e-2], rtol=1e-6)
    model.fit(x_few, y_few, batch_size=16, epochs=10, verbose=0)
    fine_tuned = accuracy(model, split["new_test"])
    # BatchNorm stays in inference mode (statistics fixed) inside the unfrozen
    # part; the layers before `unfreeze_from` stay frozen, the others learn.
    assert not bn.trainable
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), moving[1])
    np.testing.assert_array_equal(inner.get_layer(first_conv).kernel.numpy(), frozen)
    assert np.abs(inner.get_layer(second_conv).kernel.numpy() - tuned).max() > 0
    keras.utils.set_random_seed(3)
    scratch = kt.models.default_classifier((8, 8, 1), 5)
    scratch.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    scratch.fit(x_few, y_few, batch_size=16, epochs=30, verbose=0)
    from_scratch = accuracy(scratch, split["new_test"])
    assert extracted > from_scratch + 0.03 and fine_tuned > from_scratch + 0.03, (extracted, fine_tuned, from_scratch)


def test_transfer_errors_name_the_argument(trained_base):
    base = keras.saving.load_model(trained_base)
    with pytest.raises(ValueError, match="no layer named 'conv9'.*Received: layer_name='conv9'"):
        kt.models.transfer.feature_extractor(base, "conv9")
    with pytest.raises(ValueError, match="Received: layer_name='conv9'"):
        kt.models.transfer.fine_tune(base, 3, layer_name="conv9")
    model = kt.models.transfer.fine_tune(base, 3)
    with pytest.raises(ValueError, match="Received: unfreeze_from='nope'"):
        kt.models.transfer.unfreeze(model, "nope")
    with pytest.raises(ValueError, match="Received: base_learning_rate_multiplier=0.0"):
        kt.models.transfer.unfreeze(model, "bn", base_learning_rate_multiplier=0.0)
    with pytest.raises(ValueError, match="Received: feature_layer='conv9'"):
        kt.models.LearningWithoutForgetting(base, 5, feature_layer="conv9")
    with pytest.raises(ValueError, match="Received: old_task_weight=-1.0"):
        kt.models.LearningWithoutForgetting(base, 5, old_task_weight=-1)


def wrapped_base():
    """A base whose hidden layers are the three kernel wrappers, trained a little."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 1))
    h = kt.layers.WeightNormalization(keras.layers.Conv2D(4, 3, activation="relu"), name="wn")(inputs)
    h = keras.layers.Flatten()(h)
    h = kt.layers.WeightNoise(keras.layers.Dense(16, activation="relu"), stddev=0.05, seed=1, name="noise")(h)
    h = kt.layers.DropConnect(keras.layers.Dense(8, activation="relu"), rate=0.2, seed=2, name="features")(h)
    outputs = keras.layers.Dense(5, activation="softmax", name="old_task")(h)
    return keras.Model(inputs, outputs, name="wrapped")


def weights_of(layer_or_model):
    return [keras.ops.convert_to_numpy(v).copy() for v in layer_or_model.weights]


def test_frozen_kernel_wrappers_reload_clone_preflight_and_fine_tune(split, tmp_path):
    """Freeze, save, load, clone, preflight, unfreeze, train on.

    (Frozen wrappers' `.keras` file loaded in a fresh process:
    `tests/layers/test_integration.py`.)
    """
    x, y = split["new"][0][:64], split["new"][1][:64]
    base = wrapped_base()
    base.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    base.fit(split["old"][0][:128], split["old"][1][:128], batch_size=64, epochs=1, verbose=0)
    extractor = kt.models.transfer.feature_extractor(base)  # freezes the shared layers
    assert not base.get_layer("wn").layer.trainable
    model = kt.models.transfer.fine_tune(base, 5, learning_rate=1e-2)
    for m, name in ((extractor, "extractor"), (model, "fine_tune")):
        m.save(tmp_path / f"{name}.keras")
    expected = [keras.ops.convert_to_numpy(m(x, training=False)) for m in (extractor, model)]
    got = [keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / f"{name}.keras")(x, training=False))
           for name in ("extractor", "fine_tune")]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-6)
    clone = keras.models.clone_model(extractor)
    clone.set_weights(extractor.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), expected[0], atol=1e-6)
    before_preflight = weights_of(model)
    report = kt.preflight.check(model, (x, y), batch_size=32, num_examples=64, overfit_steps=10, signal_steps=5)
    assert "overfit_one_batch" in report.checks, report.checks  # trained a clone
    for b, a in zip(before_preflight, weights_of(model)):  # it trained copies (clones) only
        np.testing.assert_array_equal(a, b)
    # Stage 1: the frozen base stays as it was; stage 2: unfrozen, it learns.
    frozen = weights_of(model.get_layer("base"))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for b, a in zip(frozen, weights_of(model.get_layer("base"))):
        np.testing.assert_array_equal(a, b)
    kt.models.transfer.unfreeze(model, 0, learning_rate=1e-2)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    base_layer = model.get_layer("base")
    moved = {v.path for v, b in zip(base_layer.weights, frozen) if np.abs(keras.ops.convert_to_numpy(v) - b).max() > 0}
    for wrapper in ("wn", "noise", "features"):
        assert any(p.startswith(f"{wrapper}/") and p.endswith("kernel") for p in moved), (wrapper, moved)
    assert any(p == "wn/g" for p in moved), moved
