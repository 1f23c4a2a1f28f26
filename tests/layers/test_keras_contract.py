"""Every public layer passes Keras's own layer contract harness.

`keras.src.testing.TestCase.run_layer_test` (the harness Keras's own layers
pass) checks, for each layer: the config round trip and serialization, the
build, the symbolic call against the eager one (output shape and dtype), one
compiled training step (`fit` with `jit_compile="auto"`) and the layer built
with `dtype="mixed_float16"` (its output dtype equals its own output spec,
its weights stay float32). Tests may use `keras.src.testing`; the package
may not.

The layers are discovered from `kt.layers`, so a new public layer is picked
up: `CASES` gives each its constructor arguments and input, and a layer
without an entry runs with no arguments on images `(2, 6, 6, 3)`. Add an
entry when that does not suit the layer.

What the harness cannot run as it is:
- `AugmentationPolicy` is a `keras.Sequential`, whose constructor takes no
  `dtype` (each of its layers has its own): its mixed-precision step is off
  (the global mixed policy is walked in `test_user_paths.py`).
- `Standardize` refuses to run before `adapt()` and the harness builds its
  layers from constructor arguments only; it runs through
  `_AdaptedStandardize`, a test subclass that adapts when built.
- `RandomJpegQuality` needs TensorFlow's JPEG codec: not on JAX.
- `AutoAugment` compiles its 25 sub-policies in the training check: on
  TensorFlow only, for the JAX job's time.
"""

import keras
import numpy as np
import pytest
from keras.src import testing

import kerastoolkit as kt

BACKEND = keras.backend.backend()


class _AdaptedStandardize(kt.layers.Standardize):
    """`Standardize` adapted on fixed data as soon as it is built."""

    def build(self, input_shape):
        super().build(input_shape)
        self.built = True
        data = np.random.RandomState(0).uniform(0, 4, (16,) + tuple(input_shape[1:]))
        self.adapt(data.astype("float32"))


# Per-layer arguments of `run_layer_test`; `input_shape` includes the batch.
# Wrapped layers are made afresh for every harness run (`layer` factories).
CASES = {
    "AugmentationPolicy": {  # a keras.Sequential: no `dtype` argument (its layers have theirs)
        "init_kwargs": lambda: {"layers": [keras.layers.RandomFlip(seed=1),
                                           kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=1)]},
        "input_shape": (2, 6, 6, 3), "mixed_precision": False,
    },
    "AutoAugment": {"init_kwargs": {"value_range": (0, 1), "seed": 1}, "input_shape": (2, 8, 8, 3)},
    "DropConnect": {
        "init_kwargs": lambda: {"layer": keras.layers.Dense(3), "rate": 0.3, "seed": 1},
        "input_shape": (4, 5), "expected_output_shape": (4, 3),
    },
    "GhostBatchNormalization": {"init_kwargs": {"virtual_batch_size": 2}, "input_shape": (4, 3)},
    "InstanceNormalization": {"init_kwargs": {}, "input_shape": (2, 4, 4, 3)},
    "MultiCrop": {
        "init_kwargs": {"height": 3, "width": 4, "num_crops": 2, "seed": 1},
        "input_shape": (2, 5, 6, 3), "expected_output_shape": (2, 2, 3, 4, 3),
    },
    "RandomGaussianNoise": {"init_kwargs": {"value_range": (0, 1), "seed": 1}, "input_shape": (2, 5, 5, 3)},
    "RandomJpegQuality": {"init_kwargs": {"value_range": (0, 1), "seed": 1}, "input_shape": (2, 8, 8, 3)},
    "RandomLensDistortion": {"init_kwargs": {"value_range": (0, 1), "seed": 1}, "input_shape": (2, 5, 5, 3)},
    "RandomShear": {"init_kwargs": {"x_factor": 0.1, "y_factor": 0.1, "seed": 1}, "input_shape": (2, 5, 5, 3)},
    "SaltAndPepperNoise": {"init_kwargs": {"value_range": (0, 1), "seed": 1}, "input_shape": (2, 5, 5, 3)},
    "Standardize": {"layer_cls": _AdaptedStandardize, "init_kwargs": {"mode": "mean_image"},
                    "input_shape": (2, 4, 4, 3)},
    "StochasticDepth": {"init_kwargs": {"rate": 0.3, "seed": 1}, "input_shape": (4, 5)},
    "TrainingOnly": {"init_kwargs": lambda: {"layer": keras.layers.RandomFlip(seed=1)}, "input_shape": (2, 5, 5, 3)},
    "WeightNoise": {
        "init_kwargs": lambda: {"layer": keras.layers.Dense(3), "stddev": 0.1, "seed": 1},
        "input_shape": (4, 5), "expected_output_shape": (4, 3),
    },
    "WeightNormalization": {
        "init_kwargs": lambda: {"layer": keras.layers.Conv2D(5, 2)},
        "input_shape": (2, 4, 4, 3), "expected_output_shape": (2, 3, 3, 5),
    },
}
DEFAULT_CASE = {"init_kwargs": {}, "input_shape": (2, 6, 6, 3)}
NOT_ON_JAX = {"RandomJpegQuality": "TensorFlow's JPEG codec", "AutoAugment": "the JAX job's time"}

# More wrapped layers through the same harness: the recurrent and Conv1D
# layers WeightNormalization takes, and a frozen wrapped layer.
WRAPPED = {
    "WeightNormalization(LSTM)": (kt.layers.WeightNormalization,
                                  lambda: {"layer": keras.layers.LSTM(3), "data_init": False}, (2, 4, 5), (2, 3)),
    "WeightNormalization(GRU)": (kt.layers.WeightNormalization,
                                 lambda: {"layer": keras.layers.GRU(3, return_sequences=True), "data_init": False},
                                 (2, 4, 5), (2, 4, 3)),
    "WeightNormalization(Conv1D)": (kt.layers.WeightNormalization,
                                    lambda: {"layer": keras.layers.Conv1D(3, 2, padding="causal", dilation_rate=2)},
                                    (2, 6, 4), (2, 6, 3)),
    "DropConnect(SimpleRNN)": (kt.layers.DropConnect,
                               lambda: {"layer": keras.layers.SimpleRNN(3), "rate": 0.2, "seed": 2}, (2, 4, 5), (2, 3)),
}


def public_layers():
    """Names of the layer classes `kt.layers` exports."""
    return sorted(
        name for name, obj in vars(kt.layers).items()
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
    )


class _Harness(testing.TestCase):
    __test__ = False  # a helper, not a test case of its own

    def runTest(self):  # unittest needs one to instantiate the case
        pass


def run_harness(layer_cls, init_kwargs, input_shape, mixed_precision=True, **expected):
    """Keras's `run_layer_test` with its training and mixed-precision checks on."""
    case = _Harness()
    case.setUp()
    try:
        case.run_layer_test(
            layer_cls, init_kwargs, input_shape=input_shape,
            custom_objects={layer_cls.__name__: layer_cls},
            run_training_check=True, run_mixed_precision_check=mixed_precision, **expected,
        )
    finally:
        case.tearDown()


def _fresh(init_kwargs):
    return init_kwargs() if callable(init_kwargs) else dict(init_kwargs)


def test_every_public_layer_is_walked():
    names = public_layers()
    assert {"WeightNormalization", "WeightNoise", "DropConnect", "AutoAugment", "TrainingOnly"} <= set(names)
    unknown = sorted(set(CASES) - set(names))
    assert not unknown, f"CASES names layers kt.layers does not export: {unknown}"


@pytest.mark.parametrize("name", public_layers())
def test_layer_passes_the_keras_layer_contract(name):
    if BACKEND != "tensorflow" and name in NOT_ON_JAX:
        pytest.skip(f"{name}: {NOT_ON_JAX[name]}")
    spec = dict(CASES.get(name, DEFAULT_CASE))
    layer_cls = spec.pop("layer_cls", getattr(kt.layers, name))
    init_kwargs = _fresh(spec.pop("init_kwargs"))
    input_shape = spec.pop("input_shape")
    spec.setdefault("expected_output_shape", input_shape)
    spec.setdefault("expected_output_dtype", "float32")
    run_harness(layer_cls, init_kwargs, input_shape, **spec)


@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_wrapped_recurrent_and_conv1d_layers_pass_the_contract(name):
    layer_cls, init_kwargs, input_shape, output_shape = WRAPPED[name]
    run_harness(layer_cls, init_kwargs(), input_shape,
                expected_output_shape=output_shape, expected_output_dtype="float32")


@pytest.mark.parametrize("wrapper", ["WeightNormalization", "WeightNoise", "DropConnect"])
def test_frozen_wrapped_layer_passes_the_contract(wrapper):
    """A frozen Dense inside each kernel wrapper: no trainable weight of its own left."""

    def frozen_dense():
        dense = keras.layers.Dense(3)
        dense.trainable = False
        return dense

    extra = {"WeightNormalization": {"data_init": False}, "WeightNoise": {"seed": 1}, "DropConnect": {"seed": 1}}
    expected_trainable = 1 if wrapper == "WeightNormalization" else 0  # g
    run_harness(
        getattr(kt.layers, wrapper), {"layer": frozen_dense(), **extra[wrapper]}, (4, 5),
        expected_output_shape=(4, 3), expected_output_dtype="float32",
        expected_num_trainable_weights=expected_trainable,
    )
