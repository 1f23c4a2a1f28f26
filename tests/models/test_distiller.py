"""Distiller, DistillationLoss and soft_targets against NumPy's Hinton et al. formula."""

import json
import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow
from tests.harness import assert_config_roundtrip


def assert_model_config_roundtrip(model):
    """`assert_config_roundtrip` for models holding models.

    Keras's nested functional configs come back from JSON with lists where
    the live objects have tuples (`build_config.input_shape`), so configs are
    compared as JSON.
    """
    config = model.get_config()
    as_json = json.loads(json.dumps(config))
    clone = type(model).from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == as_json
    rebuilt = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    )
    assert type(rebuilt) is type(model)
    assert json.loads(json.dumps(rebuilt.get_config())) == as_json
    return rebuilt

T = 3.0
ALPHA = 0.3


# ------------------------------------------------------------ NumPy reference
def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_distillation_loss(y, s, t, weights, alpha, temperature):
    """α·CE(y, s) + (1−α)·T²·KL(softmax(t/T) ‖ softmax(s/T)), weighted mean."""
    p = np_softmax(s)
    ce = -np.log(p[np.arange(len(y)), y])
    q = np_softmax(t / temperature)
    ps = np_softmax(s / temperature)
    kl = np.sum(q * (np.log(q) - np.log(ps)), axis=-1)
    per_example = alpha * ce + (1 - alpha) * temperature**2 * kl
    return np.sum(weights * per_example) / len(y)


# ------------------------------------------------------------------ fixtures
def mlp(units, classes=10, name=None, softmax=False, seed=0, batch_norm=True):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def digits():
    x, y = kt.data.load("digits", as_numpy=True)
    return x[:256], y[:256]


def logits_of(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False)).astype("float64")


def hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ---------------------------------------------------------------------- tests
def test_loss_matches_numpy_with_sample_weights(digits):
    x, y = digits[0][:32], digits[1][:32]
    teacher, student = mlp(32, seed=1), mlp(8, seed=2)
    distiller = kt.models.Distiller(teacher, student, temperature=T, alpha=ALPHA)
    distiller.compile("sgd", hard_loss())
    weights = np.linspace(0.2, 2.0, len(x)).astype("float32")
    got = keras.ops.convert_to_numpy(
        distiller.compute_loss(x, y, distiller(x, training=False), weights, training=False)
    )
    expected = np_distillation_loss(y, logits_of(student, x), logits_of(teacher, x), weights, ALPHA, T)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A teacher that outputs probabilities (flagged) gives the same loss.
    prob_teacher = keras.Model(teacher.input, keras.layers.Softmax()(teacher.output))
    distiller_p = kt.models.Distiller(
        prob_teacher, student, temperature=T, alpha=ALPHA, teacher_outputs="probabilities"
    )
    distiller_p.compile("sgd", hard_loss())
    got_p = distiller_p.compute_loss(x, y, distiller_p(x), weights, training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got_p), expected, rtol=1e-4)


def test_zero_distillation_term_for_a_shifted_copy(digits):
    x = digits[0][:32]
    student = mlp(16, seed=3)
    teacher = keras.models.clone_model(student)
    teacher.set_weights(student.get_weights())
    last = teacher.layers[-1]
    last.bias.assign(last.bias + 7.5)  # same distributions, logits shifted by 7.5
    assert np.abs(logits_of(teacher, x) - logits_of(student, x) - 7.5).max() < 1e-4
    distiller = kt.models.Distiller(teacher, student, temperature=T, alpha=0.0)
    distiller.compile("sgd", hard_loss())
    loss = keras.ops.convert_to_numpy(distiller.compute_loss(x, np.zeros(32, "int64"), distiller(x)))
    assert abs(float(loss)) < 1e-5
    # Keras's own default LogitsDistillation is not zero here (the trap).
    keras_loss = keras.distillation.LogitsDistillation(temperature=T)
    wrong = keras.ops.convert_to_numpy(
        keras_loss.compute_loss(logits_of(teacher, x).astype("float32"), logits_of(student, x).astype("float32"))
    )
    assert abs(float(wrong)) > 1e-2


def test_fit_freezes_teacher_and_trains_student(digits):
    x, y = digits
    teacher, student = mlp(32, seed=1), mlp(8, seed=2)
    before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = kt.models.Distiller(teacher, student, temperature=T, alpha=ALPHA)
    distiller.compile("adam", hard_loss(), metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert "accuracy" in history.history
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit-identical, BN statistics included
    assert any(np.abs(a - b).max() > 0 for a, b in zip(student_before, student.get_weights()))
    assert len(distiller.trainable_weights) == len(student.trainable_weights)


def test_stored_soft_targets_give_the_live_teacher_loss(digits, tmp_path):
    x, y = digits[0][:64], digits[1][:64]
    teacher, student = mlp(32, seed=1), mlp(8, seed=2)
    q = kt.models.soft_targets(teacher, x, temperature=T, batch_size=24)
    np.testing.assert_allclose(q, np_softmax(logits_of(teacher, x) / T), atol=1e-6)
    np.save(tmp_path / "q.npy", q)
    q = np.load(tmp_path / "q.npy")
    live = kt.models.Distiller(teacher, student, temperature=T, alpha=ALPHA)
    offline = kt.models.Distiller(None, student, temperature=T, alpha=ALPHA)
    for d in (live, offline):
        d.compile("sgd", hard_loss())
    w = np.linspace(0.5, 1.5, 64).astype("float32")
    a = live.compute_loss(x, y, live(x), w)
    b = offline.compute_loss(x, (y, q), offline(x), w)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5)
    offline.fit(x, (y, q), batch_size=32, epochs=1, verbose=0)
    # Training without soft targets and without a teacher is an error.
    with pytest.raises(ValueError, match="soft targets"):
        offline.fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_ensemble_and_black_box_teachers(digits):
    x, y = digits[0][:48], digits[1][:48]
    members = [mlp(16, seed=s) for s in (4, 5, 6)]
    expected = np.mean([np_softmax(logits_of(m, x) / T) for m in members], axis=0)
    q_list = kt.models.soft_targets(members, x, temperature=T)
    np.testing.assert_allclose(q_list, expected, atol=1e-6)
    ensemble = kt.models.Ensemble(members, from_logits=True)
    np.testing.assert_allclose(kt.models.soft_targets(ensemble, x, temperature=T), expected, atol=1e-6)
    # The live ensemble teacher gives the loss of its averaged distributions.
    student = mlp(8, seed=2)
    live = kt.models.Distiller(ensemble, student, temperature=T, alpha=ALPHA)
    live.compile("sgd", hard_loss())
    got = keras.ops.convert_to_numpy(live.compute_loss(x, y, live(x)))
    s = logits_of(student, x)
    ps = np_softmax(s / T)
    ce = -np.log(np_softmax(s)[np.arange(48), y])
    kl = np.sum(expected * (np.log(expected) - np.log(ps)), axis=-1)
    np.testing.assert_allclose(got, np.mean(ALPHA * ce + (1 - ALPHA) * T**2 * kl), rtol=1e-5)
    # A black box answers probabilities only: q = p^(1/T) / Σ p^(1/T).
    rng = np.random.default_rng(0)
    table = np_softmax(rng.normal(size=(10, 10)) * 3)

    def black_box(batch):
        return table[np.asarray(batch).reshape(len(batch), -1).argmax(axis=1) % 10]

    p = black_box(x)
    q = kt.models.soft_targets(black_box, x, temperature=T, teacher_outputs="probabilities", batch_size=10)
    np.testing.assert_allclose(q, p ** (1 / T) / np.sum(p ** (1 / T), axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ValueError, match="teacher_outputs='probabilities'"):
        kt.models.soft_targets(black_box, x, temperature=T)
    with pytest.raises(ValueError, match="changed the batch size"):
        kt.models.soft_targets(lambda b: p[:3], x, teacher_outputs="probabilities")


@pytest.mark.parametrize("weights", [[1.0, 0.0], [0.2, 0.5]])
def test_weighted_ensemble_teacher_distils_its_weighted_average(digits, weights):
    """`Σ_m w_m·softmax(t_m/T) / Σ_m w_m`: the ensemble's own weighting, softened."""
    x, y = digits[0][:40], digits[1][:40]
    members = [mlp(16, seed=s) for s in (7, 8)]
    ensemble = kt.models.Ensemble(members, from_logits=True, weights=weights)
    softened = [np_softmax(logits_of(m, x) / T) for m in members]
    expected = sum(w * q for w, q in zip(weights, softened)) / sum(weights)
    np.testing.assert_allclose(kt.models.soft_targets(ensemble, x, temperature=T), expected, atol=1e-6)
    student = mlp(8, seed=2)
    live = kt.models.Distiller(ensemble, student, temperature=T, alpha=ALPHA)
    live.compile("sgd", hard_loss())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(live.teacher_soft_targets(x)), expected, atol=1e-6)
    got = keras.ops.convert_to_numpy(live.compute_loss(x, y, live(x)))
    s = logits_of(student, x)
    ce = -np.log(np_softmax(s)[np.arange(len(y)), y])
    kl = np.sum(expected * (np.log(expected) - np.log(np_softmax(s / T))), axis=-1)
    np.testing.assert_allclose(got, np.mean(ALPHA * ce + (1 - ALPHA) * T**2 * kl), rtol=1e-5)


@requires_tensorflow
def test_mirrored_strategy_scales_by_the_global_batch(digits, mirrored_strategy):
    x, y = digits[0][:64], digits[1][:64]
    w = np.linspace(0.5, 1.5, 64).astype("float32")

    def one_epoch(strategy):
        keras.backend.clear_session()
        with strategy.scope():
            # No BatchNorm in the student: per-replica batch statistics differ.
            teacher, student = mlp(32, seed=1), mlp(8, seed=2, batch_norm=False)
            distiller = kt.models.Distiller(teacher, student, temperature=T, alpha=ALPHA)
            distiller.compile(keras.optimizers.SGD(0.5), hard_loss())
        distiller.fit(x, y, sample_weight=w, batch_size=32, epochs=1, shuffle=False, verbose=0)
        return student.get_weights()

    import tensorflow as tf

    single = one_epoch(tf.distribute.get_strategy())
    mirrored = one_epoch(mirrored_strategy)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_bad_arguments_are_named(digits):
    teacher, student = mlp(8, seed=1), mlp(8, classes=5, seed=2)
    with pytest.raises(ValueError, match="same number of classes.*Received"):
        kt.models.Distiller(teacher, student)
    student = mlp(8, seed=2)
    with pytest.raises(ValueError, match="Received: alpha=1.5"):
        kt.models.Distiller(teacher, student, alpha=1.5)
    with pytest.raises(ValueError, match="Received: alpha=-0.1"):
        kt.models.Distiller(teacher, student, alpha=-0.1)
    with pytest.raises(ValueError, match="Received: temperature=0.0"):
        kt.models.Distiller(teacher, student, temperature=0)
    with pytest.raises(ValueError, match="Received: temperature=-1.0"):
        kt.models.soft_targets(teacher, digits[0], temperature=-1)
    with pytest.raises(ValueError, match="Received: teacher_outputs='softmax'"):
        kt.models.Distiller(teacher, student, teacher_outputs="softmax")
    with pytest.raises(TypeError, match="Received: student="):
        kt.models.Distiller(teacher, "student")
    with pytest.raises(TypeError, match="Received: teacher="):
        kt.models.Distiller(lambda b: b, student)
    with pytest.raises(ValueError, match="Received: loss=None"):
        kt.models.Distiller(teacher, student).compile("sgd")
    with pytest.raises(ValueError, match="Received: temperature=0.0"):
        kt.models.DistillationLoss(temperature=0)


def test_config_keras_file_and_student_export(digits, tmp_path):
    x, y = digits[0][:32], digits[1][:32]
    teacher, student = mlp(16, seed=1), mlp(8, seed=2)
    distiller = kt.models.Distiller([teacher, mlp(16, seed=7)], student, temperature=T, alpha=ALPHA)
    distiller.compile("adam", hard_loss())
    distiller.fit(x, y, epochs=1, verbose=0)
    rebuilt = assert_model_config_roundtrip(distiller)
    assert rebuilt.alpha == ALPHA and rebuilt.temperature == T and len(rebuilt.teacher) == 2
    loss = kt.models.DistillationLoss(temperature=2.5, from_logits=False)
    assert assert_config_roundtrip(loss).temperature == 2.5
    distiller.save(tmp_path / "model.keras")  # fresh-process loading: tests/models/test_saving.py
    reloaded = keras.saving.load_model(os.path.join(tmp_path, "model.keras"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded.compute_loss(x, y, reloaded(x), training=False)),
        keras.ops.convert_to_numpy(distiller.compute_loss(x, y, distiller(x), training=False)),
        rtol=1e-5,
    )
    if keras.backend.backend() == "tensorflow":
        # The docstring's export: the student outputs logits, so what is served as
        # `probabilities` is their softmax (an independent NumPy softmax here).
        path = kt.export.saved_model(distiller.student, str(tmp_path / "student"), warmup_requests=0)
        served = kt.export.load(path)  # the serving_default signature; keeps the loaded object alive
        logits = logits_of(student, x)
        assert logits.min() < 0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(served(x), e / e.sum(axis=1, keepdims=True), atol=1e-5)
        assert served.metadata["model_outputs"]["kind"] == "logits"
