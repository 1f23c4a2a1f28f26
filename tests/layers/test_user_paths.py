"""Every public layer and model kind along the paths a Keras user takes.

Each subject (every class `kt.layers` exports, and the model kinds of
`kt.models`) sits in a small model that goes through:

- `fit` for two steps, frozen (`trainable=False`: its weights must not
  move), for subjects with weights; the others are compiled for inference
  only (Keras's harness in `test_keras_contract.py` fits each layer);
- `float32`, `dtype="mixed_float16"` on the layer, or the global
  `mixed_float16` policy (the layer then computes and outputs float16);
- `jit_compile` on or off (inference: `predict`, compiled the same way,
  agrees with the eager `model(x, training=False)`);
- `keras.models.clone_model` with the same weights: the same outputs;
- a `.keras` file loaded again (`keras.saving.load_model`): the same
  outputs (frozen kernel wrappers loaded in a fresh process:
  `tests/layers/test_integration.py`; every layer exported as a SavedModel
  and served: `tests/export/test_saved_model.py`);
- one example as well as a batch, for layers that take single examples.

The cells are a covering design, as in `tests/compat`: one cell per
subject, frozen for those with weights (freezing a layer without weights
changes nothing; a trainable layer's update is checked by its own tests and
by Keras's harness in `test_keras_contract.py`), the (dtype, jit) settings
rotated within each group so that every pair of values of (frozen, dtype,
jit) appears (`test_the_design_covers_every_pair`). A layer `kt.layers`
exports without an entry in `LAYERS` is walked, trainable, with no
constructor arguments on images `(6, 6, 3)`. `NOT_WALKED` names the layers
left to other tests, with the reason.
"""

import itertools
import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="walked on TensorFlow (XLA, RandomJpegQuality); the layers' math runs on JAX in test_math and test_weight_normalization",
)

PRECISIONS = ("float32", "dtype", "global")
JIT = (False, True)
IMAGE = (6, 6, 3)


def _adapted_standardize(**kwargs):
    layer = kt.layers.Standardize("per_channel", **kwargs)
    layer.adapt(np.random.RandomState(0).uniform(0, 1, (16,) + IMAGE).astype("float32"))
    return layer


W = {"weights": True}
# name -> (maker(**dtype_kwargs), per-example input shape, options)
# options: "single" (takes one example), "weights" (walked frozen),
# "dtype_argument" (False: no `dtype` constructor argument).
LAYERS = {
    "AugmentationPolicy": (lambda **kw: kt.layers.AugmentationPolicy(
        [keras.layers.RandomFlip(seed=1, **kw), kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=1, **kw)]),
        IMAGE, {"single": True, "dtype_argument": False}),
    "DropConnect": (lambda **kw: kt.layers.DropConnect(keras.layers.Dense(4), rate=0.3, seed=1, **kw), (5,), W),
    "FilterResponseNormalization": (lambda **kw: kt.layers.FilterResponseNormalization(**kw), IMAGE, W),
    "GhostBatchNormalization": (lambda **kw: kt.layers.GhostBatchNormalization(2, **kw), (5,), W),
    "InstanceNormalization": (lambda **kw: kt.layers.InstanceNormalization(**kw), IMAGE, W),
    "MultiCrop": (lambda **kw: kt.layers.MultiCrop(4, 4, num_crops=2, seed=1, **kw), IMAGE, {"single": True}),
    "RandomGaussianNoise": (lambda **kw: kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=1, **kw),
                            IMAGE, {"single": True}),
    "RandomJpegQuality": (lambda **kw: kt.layers.RandomJpegQuality(20, 60, value_range=(0, 1), seed=1, **kw),
                          IMAGE, {"single": True}),
    "RandomLensDistortion": (lambda **kw: kt.layers.RandomLensDistortion(0.3, value_range=(0, 1), seed=1, **kw),
                             IMAGE, {"single": True}),
    "RandomShear": (lambda **kw: kt.layers.RandomShear(0.2, 0.2, seed=1, **kw), IMAGE, {"single": True}),
    "SaltAndPepperNoise": (lambda **kw: kt.layers.SaltAndPepperNoise(0.1, value_range=(0, 1), seed=1, **kw),
                           IMAGE, {"single": True}),
    "Standardize": (_adapted_standardize, IMAGE, W),
    "StochasticDepth": (lambda **kw: kt.layers.StochasticDepth(0.3, seed=1, **kw), (5,), {}),
    "TLU": (lambda **kw: kt.layers.TLU(**kw), IMAGE, W),
    "TrainingOnly": (lambda **kw: kt.layers.TrainingOnly(keras.layers.RandomFlip(seed=1), **kw), IMAGE,
                     {"single": True}),
    "WeightNoise": (lambda **kw: kt.layers.WeightNoise(keras.layers.Dense(4), stddev=0.1, seed=1, **kw), (5,), W),
    "WeightNormalization": (lambda **kw: kt.layers.WeightNormalization(
        keras.layers.Conv2D(3, 3, activation="relu"), **kw), IMAGE, W),
    "WeightNormalization(LSTM)": (lambda **kw: kt.layers.WeightNormalization(
        keras.layers.LSTM(3), data_init=False, **kw), (4, 3), W),
}


# Public layers this module does not walk, and why.
NOT_WALKED = {
    # Inference is the identity and its training graph (25 sub-policies)
    # costs ~10 s: Keras's harness runs it (serialization, symbolic vs eager,
    # a compiled fit, mixed_float16), test_augmentation.py one image and
    # jit/mixed_float16, tests/export its SavedModel.
    "AutoAugment": "walked by test_keras_contract, test_augmentation and tests/export",
}


def public_layer_names():
    return {n for n, obj in vars(kt.layers).items() if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)}


def layer_subjects():
    subjects = dict(LAYERS)
    for name in sorted(public_layer_names() - {n.split("(")[0] for n in LAYERS} - set(NOT_WALKED)):
        subjects[name] = (lambda name=name, **kw: getattr(kt.layers, name)(**kw), IMAGE, {})
    return subjects


def _mlp(name, dtype_kwargs, classes=3, softmax=True, wrapper="noise"):
    """A small classifier of (5,) inputs with a toolkit kernel wrapper first."""
    inputs = keras.Input((5,))
    dense = keras.layers.Dense(6, activation="relu")
    if wrapper == "noise":
        first = kt.layers.WeightNoise(dense, stddev=0.05, seed=1, name=f"{name}_first", **dtype_kwargs)
    else:
        first = kt.layers.DropConnect(dense, rate=0.2, seed=1, name=f"{name}_first", **dtype_kwargs)
    outputs = keras.layers.Dense(classes, activation="softmax" if softmax else None, dtype="float32")(first(inputs))
    return keras.Model(inputs, outputs, name=name)


def _ensemble(frozen, **kw):
    model = kt.models.Ensemble([_mlp("a", kw), _mlp("b", kw, wrapper="drop")], weights=[0.3, 0.7])
    model.trainable = not frozen
    return model, model, "sparse_categorical_crossentropy"


def _distiller(frozen, **kw):
    teacher = _mlp("teacher", {}, softmax=False)
    student = _mlp("student", kw, softmax=False, wrapper="drop")
    student.get_layer("student_first").trainable = not frozen
    model = kt.models.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, student.get_layer("student_first"), loss


def _lwf(frozen, **kw):
    old = _mlp("old", kw)
    model = kt.models.LearningWithoutForgetting(old, 3, old_task_weight=0.5)
    old.get_layer("old_first").trainable = not frozen
    return model, old.get_layer("old_first"), "sparse_categorical_crossentropy"


def _fine_tune(frozen, **kw):
    model = kt.models.transfer.fine_tune(_mlp("pretrained", kw), 3, learning_rate=0.05)
    if not frozen:
        kt.models.transfer.unfreeze(model, 0, base_learning_rate_multiplier=1.0, learning_rate=0.05)
    return model, model.get_layer("base"), None


def _tta(frozen, **kw):
    inputs = keras.Input(IMAGE)
    h = kt.layers.WeightNormalization(keras.layers.Conv2D(3, 3, activation="relu"), data_init=False, **kw)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(keras.layers.GlobalAveragePooling2D()(h))
    model = kt.models.TTAPredictor(keras.Model(inputs, outputs), views=["identity", "hflip", "vflip"])
    return model, None, None  # inference only: nothing to fit


# name -> (maker(frozen, **dtype_kwargs) -> (model, part frozen or not, loss or None to keep its own), input shape)
MODELS = {
    "Distiller": (_distiller, (5,)),
    "Ensemble": (_ensemble, (5,)),
    "LearningWithoutForgetting": (_lwf, (5,)),
    "TTAPredictor": (_tta, IMAGE),
    "transfer.fine_tune": (_fine_tune, (5,)),
}


def subjects():
    """Every subject: layers as (maker, shape, options), model kinds tagged "model"."""
    found = layer_subjects()
    for name, (make, shape) in MODELS.items():
        found[name] = (make, shape, {"model": True, "weights": name != "TTAPredictor"})  # TTA: inference only
    return found


def design(subjects):
    """One cell per subject; (precision, jit) rotated within the frozen and the trainable group."""
    cells = []
    for frozen in (True, False):
        group = sorted(n for n in subjects if bool(subjects[n][2].get("weights")) == frozen)
        settings = list(itertools.product(PRECISIONS, JIT))
        for i, name in enumerate(group):
            precision, jit = settings[i % len(settings)]
            if precision == "dtype" and not subjects[name][2].get("dtype_argument", True):
                precision = "global"
            cells.append({"subject": name, "frozen": frozen, "precision": precision, "jit": jit})
    return cells


def cell_id(cell):
    frozen = "frozen" if cell["frozen"] else "trainable"
    return f"{cell['subject']}-{frozen}-{cell['precision']}-{'jit' if cell['jit'] else 'nojit'}"


CELLS = design(subjects())


def test_the_design_covers_every_pair():
    factors = {"frozen": (False, True), "precision": PRECISIONS, "jit": JIT}
    for a, b in itertools.combinations(factors, 2):
        seen = {(c[a], c[b]) for c in CELLS}
        assert seen == set(itertools.product(factors[a], factors[b])), (a, b)
    walked = subjects()
    for name, (_, _, options) in walked.items():
        mine = [c for c in CELLS if c["subject"] == name]
        assert [c["frozen"] for c in mine] == [bool(options.get("weights"))], name
    assert public_layer_names() <= {n.split("(")[0] for n in walked} | set(NOT_WALKED)
    assert {"Ensemble", "Distiller", "LearningWithoutForgetting", "TTAPredictor"} <= {c["subject"] for c in CELLS}


def build_cell(cell, subjects):
    """`(model, part, loss)`: a layer sits in input -> layer -> flatten -> float32 Dense(2)."""
    make, shape, options = subjects[cell["subject"]]
    keras.utils.set_random_seed(1)
    policy = keras.config.dtype_policy()
    if cell["precision"] == "global":
        keras.config.set_dtype_policy("mixed_float16")
    dtype = {"dtype": "mixed_float16"} if cell["precision"] == "dtype" else {}
    try:
        if options.get("model"):
            return make(cell["frozen"], **dtype)
        layer = make(**dtype)
        inputs = keras.Input(shape)
        h = layer(inputs)
        if len(h.shape) > 2:
            h = keras.layers.Flatten()(h)
        outputs = keras.layers.Dense(2, dtype="float32", name="head")(h)
        model = keras.Model(inputs, outputs, name=cell_id(cell).replace("(", "_").replace(")", "_"))
    finally:
        keras.config.set_dtype_policy(policy)
    layer.trainable = not cell["frozen"]
    return model, layer, "mse"


def to_np(x):
    """A tensor, or a model's list of outputs stacked, as NumPy."""
    if isinstance(x, (list, tuple)):
        return np.stack([to_np(t) for t in x])
    return np.asarray(keras.ops.convert_to_numpy(x))


def cell_data(cell, shape, is_model):
    rs = np.random.RandomState(2)
    x = rs.uniform(0, 1, (8,) + shape).astype("float32")
    if not is_model:
        return x, rs.normal(size=(8, 2)).astype("float32")
    labels = rs.randint(0, 3, 8)
    if cell["subject"] == "LearningWithoutForgetting":
        return x, labels  # the recorded old outputs are added once the model exists
    return x, labels


def train(cell, model, loss, x, y):
    if not cell["frozen"]:  # no weights of its own (or TTA): inference only, not compiled
        model.jit_compile = cell["jit"]
        return
    if cell["subject"] == "LearningWithoutForgetting":
        y = (y, model.record(x))
    if loss is None:  # fine_tune compiled its own optimizers: recompile with the cell's jit
        model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=cell["jit"])
    else:
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss, jit_compile=cell["jit"])
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)


def run_cell(cell, subjects, workdir):
    """Trains the cell's model and records what the tests check."""
    model, layer, loss = build_cell(cell, subjects)
    _, shape, options = subjects[cell["subject"]]
    x, y = cell_data(cell, shape, options.get("model"))
    result = {}
    if not options.get("model"):
        result["output_dtype"] = keras.backend.standardize_dtype(layer.output.dtype)
        result["eager_dtype"] = keras.backend.standardize_dtype(layer(x[:2], training=False).dtype)
    weights = layer.weights if layer is not None else []
    before = {v.path: to_np(v).copy() for v in weights}
    trainable = {v.path for v in layer.trainable_weights} if layer is not None else set()
    train(cell, model, loss, x, y)
    after = {v.path: to_np(v) for v in weights}
    result["moved"] = sorted(p for p in before if not np.array_equal(before[p], after[p]))
    result["trainable"] = sorted(trainable)
    expected = to_np(model(x, training=False))
    result.update(x=x, expected=expected, predicted=to_np(model.predict(x, batch_size=8, verbose=0)))
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    result["cloned"] = to_np(clone(x, training=False))
    result["path"] = os.path.join(workdir, f"{cell_id(cell)}.keras")
    model.save(result["path"])
    result["loaded"] = to_np(keras.saving.load_model(result["path"])(x, training=False))
    if subjects[cell["subject"]][2].get("single"):
        one = to_np(layer(x[0], training=False))
        result["single"] = (one, to_np(layer(x[:1], training=False))[0])
        result["single_training_shape"] = tuple(layer(x[0], training=True).shape)
    result["model"] = model
    return result


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("paths"))
    every = subjects()
    results = {}
    for cell in CELLS:
        try:
            results[cell_id(cell)] = run_cell(cell, every, workdir)
        except Exception as error:  # reported by the cell's own test
            results[cell_id(cell)] = {"error": f"{type(error).__name__}: {error}"}
    return results


@pytest.mark.parametrize("cell", CELLS, ids=cell_id)
def test_cell(cell, walked):
    result = walked[cell_id(cell)]
    assert "error" not in result, result.get("error")
    mixed = cell["precision"] != "float32"
    if "output_dtype" in result:  # a layer: its output, symbolic and eager alike
        dtype = "float16" if mixed else "float32"
        assert result["output_dtype"] == result["eager_dtype"] == dtype, result
    if cell["frozen"]:
        assert result["moved"] == [], result["moved"]
    elif result["trainable"]:
        assert set(result["moved"]) & set(result["trainable"]), result["moved"]
    atol = 2e-3 if mixed else 1e-5
    expected = result["expected"]
    np.testing.assert_allclose(result["predicted"], expected, atol=atol, err_msg="predict")
    np.testing.assert_allclose(result["cloned"], expected, atol=atol, err_msg="clone_model")
    np.testing.assert_allclose(result["loaded"], expected, atol=atol, err_msg=".keras loaded")
    if "single" in result:
        one, from_batch = result["single"]
        np.testing.assert_allclose(one, from_batch, atol=atol, err_msg="one example")
        assert result["single_training_shape"] == one.shape
