"""kt.losses: label-smoothed cross-entropy against a NumPy reference."""

import json

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.harness import assert_config_roundtrip

C = 5


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_smoothed_ce(labels, y_pred, eps, convention, from_logits):
    """Per-example −Σ t log p with the targets written out from the two formulas."""
    labels = np.asarray(labels)
    n_classes = y_pred.shape[-1]
    targets = np.empty(labels.shape + (n_classes,))
    for idx in np.ndindex(labels.shape):
        for c in range(n_classes):
            if convention == "lecture":
                targets[idx + (c,)] = 1 - eps if c == labels[idx] else eps / (n_classes - 1)
            else:  # Szegedy: (1 − ε)·onehot + ε/C
                targets[idx + (c,)] = (1 - eps) * (c == labels[idx]) + eps / n_classes
    p = np_softmax(y_pred.astype(np.float64)) if from_logits else y_pred / y_pred.sum(-1, keepdims=True)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(targets * np.log(p)).sum(axis=-1)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(16, C)).astype("float32") * 2
    labels = rng.integers(0, C, size=16)
    return labels, logits


def test_sparse_and_onehot_match_numpy(batch):
    for convention in ("lecture", "keras"):
        for from_logits in (True, False):
            check_against_numpy(batch, convention, from_logits)


def check_against_numpy(batch, convention, from_logits):
    labels, logits = batch
    y_pred = logits if from_logits else np_softmax(logits).astype("float32")
    expected = np_smoothed_ce(labels, y_pred, 0.2, convention, from_logits).mean()
    sparse = kt.losses.SparseCategoricalCrossentropy(
        label_smoothing=0.2, convention=convention, from_logits=from_logits
    )
    onehot = kt.losses.CategoricalCrossentropy(label_smoothing=0.2, convention=convention, from_logits=from_logits)
    np.testing.assert_allclose(float(sparse(labels, y_pred)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(sparse(labels[:, None], y_pred)), expected, rtol=1e-5)  # (n, 1) labels
    np.testing.assert_allclose(float(onehot(np.eye(C)[labels], y_pred)), expected, rtol=1e-5)


def test_conventions_differ_and_keras_one_matches_keras(batch):
    labels, logits = batch
    ours = kt.losses.CategoricalCrossentropy(label_smoothing=0.3, from_logits=True)  # default: keras
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.3, from_logits=True)
    np.testing.assert_allclose(float(ours(np.eye(C)[labels], logits)), float(theirs(np.eye(C)[labels], logits)), rtol=1e-6)
    lecture = kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.3, convention="lecture", from_logits=True)
    assert abs(float(lecture(labels, logits)) - float(ours(np.eye(C)[labels], logits))) > 1e-3
    # No smoothing: exactly Keras's sparse loss.
    plain = kt.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(plain(labels, logits)),
        float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)),
        rtol=1e-6,
    )
    targets = keras.ops.convert_to_numpy(kt.losses.smoothed_targets([2], 4, 0.3, "lecture"))
    np.testing.assert_allclose(targets, [[0.1, 0.1, 0.7, 0.1]], rtol=1e-6)


def test_ignore_class_and_sample_weights(batch):
    labels, logits = batch
    labels = labels.copy()
    labels[::3] = -1  # void entries
    weights = np.linspace(0.5, 2.0, len(labels)).astype("float32")
    loss = kt.losses.SparseCategoricalCrossentropy(
        label_smoothing=0.1, convention="lecture", from_logits=True, ignore_class=-1
    )
    valid = labels != -1
    per_example = np_smoothed_ce(labels[valid], logits[valid], 0.1, "lecture", True)
    # Keras's masking: the mean runs over the valid entries.
    np.testing.assert_allclose(float(loss(labels, logits)), per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        float(loss(labels, logits, sample_weight=weights)),
        (per_example * weights[valid]).sum() / valid.sum(),
        rtol=1e-5,
    )
    # Without smoothing it agrees with Keras's own ignore_class.
    ours = kt.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    np.testing.assert_allclose(
        float(ours(labels, logits, sample_weight=weights)), float(theirs(labels, logits, sample_weight=weights)), rtol=1e-5
    )


def test_per_position_labels_with_ignore_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, C)).astype("float32")
    labels = rng.integers(0, C, size=(2, 3, 4))
    labels[0, 0] = 255
    loss = kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.2, from_logits=True, ignore_class=255)
    valid = labels != 255
    expected = np_smoothed_ce(labels[valid], logits[valid], 0.2, "keras", True).mean()
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)


def test_config_roundtrip_and_compile_by_object():
    loss = kt.losses.SparseCategoricalCrossentropy(
        label_smoothing=0.1, convention="lecture", from_logits=True, ignore_class=3, name="ls"
    )
    rebuilt = assert_config_roundtrip(loss)
    assert rebuilt.convention == "lecture" and rebuilt.ignore_class == 3
    assert_config_roundtrip(kt.losses.CategoricalCrossentropy(label_smoothing=0.2, convention="lecture"))
    json.dumps(keras.saving.serialize_keras_object(loss))


def test_training_under_mixed_float16():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
        loss = kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.1, convention="lecture", from_logits=True)
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, jit_compile=False)
        logits = keras.ops.convert_to_numpy(model(x)).astype("float32")
        assert model(x).dtype == "float16"
        history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    finally:
        keras.config.set_dtype_policy(policy)
    expected = np_smoothed_ce(y, logits, 0.1, "lecture", True).mean()
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=2e-3)


def test_as_a_distillers_student_loss():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, C, size=32)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(C)])
    student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(C)])
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=2.0),
        student_loss_weight=1.0,
    )
    loss = kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.2, convention="lecture", from_logits=True)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
    result = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    logits = keras.ops.convert_to_numpy(student(x))
    np.testing.assert_allclose(result["loss"], np_smoothed_ce(y, logits, 0.2, "lecture", True).mean(), rtol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: convention='szegedy'"):
        kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.1, convention="szegedy")
    with pytest.raises(ValueError, match="Received: label_smoothing=1.5"):
        kt.losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing=-0.1"):
        kt.losses.SparseCategoricalCrossentropy(label_smoothing=-0.1)
    with pytest.raises(TypeError, match="Received: ignore_class='void'"):
        kt.losses.SparseCategoricalCrossentropy(ignore_class="void")
    with pytest.raises(TypeError, match="Received: from_logits='yes'"):
        kt.losses.SparseCategoricalCrossentropy(from_logits="yes")
