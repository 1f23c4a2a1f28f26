"""The lecture's initializer presets, LSUV and zero-γ residual init."""

import keras
import numpy as np
import pytest

import kerastoolkit as kt

RS = np.random.RandomState(11)


# ---------------------------------------------------------------- presets
@pytest.mark.parametrize("name, variance", [
    ("xavier_fan_in", lambda n_in, n_out: 1.0 / n_in),
    ("xavier", lambda n_in, n_out: 2.0 / (n_in + n_out)),
    ("kaiming", lambda n_in, n_out: 2.0 / n_in),
])
@pytest.mark.parametrize("distribution", ["untruncated_normal", "truncated_normal", "uniform"])
def test_presets_mean_and_variance(name, variance, distribution):
    init = kt.initializers.get(name, distribution=distribution, seed=1)
    assert type(init) is keras.initializers.VarianceScaling  # Keras's, not a copy
    # Dense (n_in=200, n_out=400); a 3x3 conv (n_in=9·20, n_out=9·40) once.
    cases = [((200, 400), 200, 400)]
    if distribution == "untruncated_normal":
        cases.append(((3, 3, 20, 40), 180, 360))
    for shape, n_in, n_out in cases:
        w = keras.ops.convert_to_numpy(init(shape)).astype("float64").ravel()
        sigma2 = variance(n_in, n_out)
        assert abs(w.mean()) < 4 * np.sqrt(sigma2 / w.size)
        # Sample variance: relative standard error sqrt(2/n) (normal) or less.
        assert w.var() == pytest.approx(sigma2, rel=4 * np.sqrt(2 / w.size))
        if distribution == "uniform":
            assert np.abs(w).max() <= np.sqrt(3 * sigma2) + 1e-7
        if distribution == "truncated_normal":
            assert np.abs(w).max() <= 2 * np.sqrt(sigma2) / 0.87962566103423978 + 1e-6


def test_zeros_and_names():
    assert type(kt.initializers.zeros()) is keras.initializers.Zeros
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kt.initializers.get("zeros")((3,))), 0)
    with pytest.raises(ValueError, match=r"Did you mean 'kaiming'.*Received: name='kaiming_normal'"):
        kt.initializers.get("kaiming_normal")
    with pytest.raises(ValueError, match=r"Received: distribution='normal_ish'"):
        kt.initializers.kaiming(distribution="normal_ish")
    with pytest.raises(TypeError, match=r"Received: seed=1.5"):
        kt.initializers.xavier(seed=1.5)
    # A model using them saves as plain Keras initializers.
    config = keras.layers.Dense(3, kernel_initializer=kt.initializers.kaiming(seed=2)).get_config()
    assert config["kernel_initializer"]["class_name"] == "VarianceScaling"
    assert config["kernel_initializer"]["config"]["scale"] == 2.0


# ---------------------------------------------------------------- LSUV
def numpy_forward(model_layers, x):
    """Pre-activations of every Dense layer of a plain MLP, in NumPy."""
    pre = []
    h = x.astype("float64")
    for layer in model_layers:
        w, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in (layer.kernel, layer.bias))
        z = h @ w + b
        pre.append(z)
        h = np.tanh(z) if layer.activation is keras.activations.tanh else (
            np.maximum(z, 0) if layer.activation is keras.activations.relu else z)
    return pre


def test_lsuv_unit_variance_nested_model_and_report():
    x = RS.rand(256, 20).astype("float32") * 5
    bad = keras.initializers.RandomNormal(stddev=0.01, seed=0)
    inner = keras.Sequential(
        [keras.Input((16,))]
        + [keras.layers.Dense(16, activation="relu", kernel_initializer=bad) for _ in range(3)],
        name="inner")
    model = keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(16, activation="tanh", kernel_initializer=bad),
        inner, keras.layers.Dense(4, kernel_initializer=bad)])
    report = kt.initializers.lsuv(model, x, tol=0.05, max_iter=10, seed=0)
    dense = [model.layers[0], *inner.layers, model.layers[2]]
    assert [r["layer"] for r in report] == [d.name for d in dense]
    pre = numpy_forward(dense, x)
    for r, z in zip(report, pre):
        assert r["converged"] and 1 <= r["iterations"] <= 10
        assert abs(z.var() - 1.0) < 0.05
        assert r["variance_after"] == pytest.approx(z.var(), rel=1e-4)
    # The kernels are rescaled orthogonal matrices: columns orthogonal, equal norms.
    for layer in dense[1:4]:
        k = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
        gram = k.T @ k
        np.testing.assert_allclose(gram, np.eye(16) * gram[0, 0], atol=1e-5 * gram[0, 0])
    # The first layer's output variance before rescaling: orthogonal W on x.
    assert report[0]["variance_before"] != pytest.approx(1.0, abs=0.05)


def test_lsuv_conv_model():
    x = RS.rand(32, 8, 8, 3).astype("float32")
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3)])
    report = kt.initializers.lsuv(model, x, tol=0.05, seed=1)
    assert len(report) == 3 and all(r["converged"] for r in report)
    first = model.layers[0]
    k = keras.ops.convert_to_numpy(first.kernel).astype("float64")
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (32,6,6,3,3,3)
    z = np.einsum("nhwcij,ijco->nhwo", windows, k) + keras.ops.convert_to_numpy(first.bias)
    assert abs(z.var() - 1.0) < 0.05


def test_lsuv_arguments():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.ones((4, 3), "float32")
    with pytest.raises(ValueError, match=r"Received: tol=0.0"):
        kt.initializers.lsuv(model, x, tol=0)
    with pytest.raises(ValueError, match=r"Received: max_iter=0"):
        kt.initializers.lsuv(model, x, max_iter=0)
    with pytest.raises(TypeError, match=r"Received: model="):
        kt.initializers.lsuv(keras.layers.Dense(2), x)
    with pytest.raises(ValueError, match="no Dense or Conv"):
        kt.initializers.lsuv(keras.Sequential([keras.Input((3,)), keras.layers.ReLU()]), x)


# ---------------------------------------------------------------- zero γ
def resnet_like():
    inputs = keras.Input((6, 6, 4))

    def block(x, projection, name):
        h = keras.layers.Conv2D(4, 3, padding="same", name=f"{name}_conv1")(x)
        h = keras.layers.BatchNormalization(name=f"{name}_bn1")(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.Conv2D(4, 3, padding="same", name=f"{name}_conv2")(h)
        h = keras.layers.BatchNormalization(name=f"{name}_bn2")(h)
        if projection:
            x = keras.layers.Conv2D(4, 1, name=f"{name}_proj")(x)
            x = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(x)
        return keras.layers.ReLU()(keras.layers.Add()([x, h]))

    h = block(inputs, True, "a")
    inner_in = keras.Input((6, 6, 4))
    inner = keras.Model(inner_in, block(inner_in, False, "b"), name="nested")
    outputs = inner(h)
    return keras.Model(inputs, outputs)


def test_zero_init_residual_gamma():
    model = resnet_like()
    zeroed = kt.initializers.zero_init_residual_gamma(model)
    assert sorted(zeroed) == ["a_bn2", "b_bn2"]
    inner = model.get_layer("nested")
    for name in ("a_bn2",):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer(name).gamma), 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(inner.get_layer("b_bn2").gamma), 0)
    for name in ("a_bn1", "a_proj_bn"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer(name).gamma), 1)
    # Each block starts as the identity plus its shortcut: block b is relu(x).
    x = RS.randn(2, 6, 6, 4).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(inner(x, training=False)), np.maximum(x, 0), atol=1e-6)
    with pytest.raises(TypeError, match="Received: model="):
        kt.initializers.zero_init_residual_gamma("resnet")


# ------------------------------------------------------- frozen and mixed paths
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_lsuv_leaves_a_frozen_base_alone_and_runs_under_mixed_precision(policy):
    """A pre-trained, frozen first layer keeps its weights; the layers after it
    reach unit pre-activation variance on the frozen layer's real outputs."""
    x = RS.rand(256, 12).astype("float32") * 3
    bad = keras.initializers.RandomNormal(stddev=0.01, seed=0)
    keras.config.set_dtype_policy(policy)
    try:
        base = keras.layers.Dense(10, activation="relu", name="pretrained")
        model = keras.Sequential([
            keras.Input((12,)), base,
            keras.layers.Dense(8, activation="tanh", kernel_initializer=bad),
            keras.layers.Dense(3, kernel_initializer=bad, dtype="float32")])
    finally:
        keras.config.set_dtype_policy("float32")
    base.trainable = False
    frozen = [keras.ops.convert_to_numpy(w).copy() for w in base.weights]
    report = kt.initializers.lsuv(model, x, tol=0.1, seed=0)
    assert [r["layer"] for r in report] == [layer.name for layer in model.layers[1:]]
    for before, after in zip(frozen, base.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(after), before)
    pre = numpy_forward(model.layers, x)
    for r, z in zip(report, pre[1:]):
        assert r["converged"], report
        assert abs(z.var() - 1.0) < (0.1 if policy == "float32" else 0.15), (r, z.var())


def test_zero_init_residual_gamma_keeps_a_frozen_block():
    model = resnet_like()
    model.get_layer("nested").trainable = False  # a pre-trained block
    assert kt.initializers.zero_init_residual_gamma(model) == ["a_bn2"]
    inner = model.get_layer("nested")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(inner.get_layer("b_bn2").gamma), 1)
    # A frozen end of branch never passes its zero to the projection's BN.
    model = resnet_like()
    model.get_layer("a_bn2").trainable = False
    assert kt.initializers.zero_init_residual_gamma(model) == ["b_bn2"]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("a_proj_bn").gamma), 1)
