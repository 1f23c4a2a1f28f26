"""kt.layers augmentation layers: NumPy references, identity at inference, saving, distribution."""

import io

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import BACKEND, requires_tensorflow
from tests.harness import assert_config_roundtrip, fresh_process_predict


def random_layers(value_range=(0, 255), seed=1, autoaugment=True):
    layers = [
        kt.layers.RandomGaussianNoise(0.05, value_range=value_range, seed=seed),
        kt.layers.SaltAndPepperNoise(0.05, value_range=value_range, seed=seed),
        kt.layers.RandomLensDistortion(0.3, value_range=value_range, seed=seed),
    ]
    if autoaugment:
        layers.append(kt.layers.AutoAugment(value_range=value_range, seed=seed))
    if BACKEND == "tensorflow":
        layers.append(kt.layers.RandomJpegQuality(20, 60, value_range=value_range, seed=seed))
    return layers


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(6, 12, 10, 1)).astype("float32")


def test_random_in_training_identity_at_inference_and_seeded(images):
    # AutoAugment's 50 core layers run eagerly op by op on JAX (~10 s): TensorFlow job only.
    for layer in random_layers(autoaugment=BACKEND == "tensorflow"):
        name = type(layer).__name__
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images, err_msg=name)
        augmented = keras.ops.convert_to_numpy(layer(images, training=True))
        assert augmented.shape == images.shape
        assert np.abs(augmented - images).max() > 1.0, name
        # Same seed, fresh layer: same draws; another seed: other draws.
        again = type(layer).from_config(layer.get_config())
        np.testing.assert_allclose(keras.ops.convert_to_numpy(again(images)), augmented, atol=1e-4, err_msg=name)
        if name != "AutoAugment":  # one sub-policy per batch may coincide
            other = type(layer).from_config({**layer.get_config(), "seed": 2})
            assert np.abs(keras.ops.convert_to_numpy(other(images)) - augmented).max() > 1e-3, name


def test_gaussian_and_salt_and_pepper_noise_statistics():
    grey = np.full((32, 32, 32, 3), 0.5, dtype="float32")
    noisy = keras.ops.convert_to_numpy(kt.layers.RandomGaussianNoise(0.05, value_range=(0, 1), seed=0)(grey))
    delta = noisy - grey
    assert abs(delta.mean()) < 2e-3 and abs(delta.std() - 0.05) < 2e-3
    clipped = keras.ops.convert_to_numpy(kt.layers.RandomGaussianNoise(2.0, value_range=(0, 1), seed=0)(grey))
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    salted = keras.ops.convert_to_numpy(kt.layers.SaltAndPepperNoise(0.2, value_range=(0, 1), seed=0)(grey))
    changed = salted != 0.5
    assert np.all(changed == changed[..., :1])  # a pixel's channels change together
    values = salted[changed]
    assert set(np.unique(values)) == {0.0, 1.0}
    assert abs(changed[..., 0].mean() - 0.2) < 0.01
    assert abs((values == 1.0).mean() - 0.5) < 0.03


def numpy_lens(image, k, fill=0.0):
    """Radial model: the output at normalised p samples the input at p·(1 + k|p|²), bilinearly."""
    h, w, c = image.shape
    out = np.empty_like(image, dtype=np.float64)

    def pixel(y, x):
        return image[y, x] if 0 <= y < h and 0 <= x < w else np.full(c, fill)

    for i in range(h):
        for j in range(w):
            py, px = -1 + 2 * i / (h - 1), -1 + 2 * j / (w - 1)
            s = 1 + k * (py * py + px * px)
            sy, sx = (py * s + 1) * (h - 1) / 2, (px * s + 1) * (w - 1) / 2
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            fy, fx = sy - y0, sx - x0
            out[i, j] = (
                pixel(y0, x0) * (1 - fy) * (1 - fx)
                + pixel(y0, x0 + 1) * (1 - fy) * fx
                + pixel(y0 + 1, x0) * fy * (1 - fx)
                + pixel(y0 + 1, x0 + 1) * fy * fx
            )
    return out


def test_lens_distortion_matches_numpy(images):
    for k in (0.25, -0.25):
        check_lens(images, k)


def check_lens(images, k):
    layer = kt.layers.RandomLensDistortion((k, k), value_range=(0, 255), seed=0)
    got = keras.ops.convert_to_numpy(layer(images[:2]))
    for n in range(2):
        np.testing.assert_allclose(got[n], numpy_lens(images[n], k), atol=1e-3)
    if k > 0:  # barrel: the corners sample outside the image
        assert np.all(got[:, 0, 0] == 0.0)
    else:  # pincushion: everything samples inside
        assert np.all(got > 0)


def test_multi_crop_positions(images):
    crop = kt.layers.MultiCrop(8, 7, num_crops=5, seed=0)
    fixed = keras.ops.convert_to_numpy(crop(images, training=False))
    expected = [images[:, 2:10, 1:8], images[:, :8, :7], images[:, :8, 3:], images[:, 4:, :7], images[:, 4:, 3:]]
    np.testing.assert_array_equal(fixed, np.stack(expected, axis=1))
    random = keras.ops.convert_to_numpy(crop(images, training=True))
    assert random.shape == (6, 5, 8, 7, 1)
    offsets = set()
    for b in range(6):
        for n in range(5):
            found = [
                (y, x) for y in range(5) for x in range(4) if np.array_equal(random[b, n], images[b, y : y + 8, x : x + 7])
            ]
            assert found, (b, n)
            offsets.add(found[0])
    assert len(offsets) > 5  # the positions vary
    assert crop.compute_output_shape((None, 12, 10, 1)) == (None, 5, 8, 7, 1)


@requires_tensorflow
def test_jpeg_artefacts_match_pillow(images):
    from PIL import Image

    smooth = np.kron(images[:2, :6, :5], np.ones((1, 4, 4, 1))).astype("uint8").astype("float32")  # 24x20
    for quality in (20, 80):
        layer = kt.layers.RandomJpegQuality(quality, quality, value_range=(0, 255), seed=0)
        got = keras.ops.convert_to_numpy(layer(smooth))
        for n in range(2):
            buffer = io.BytesIO()
            Image.fromarray(smooth[n, ..., 0].astype("uint8")).save(buffer, format="JPEG", quality=quality)
            reference = np.asarray(Image.open(buffer), dtype=np.float64)
            assert np.abs(got[n, ..., 0] - reference).max() <= 4.0
            assert np.abs(got[n, ..., 0] - reference).mean() < 1.0  # IFAST vs ISLOW DCT: ±1 levels
            assert np.abs(reference - smooth[n, ..., 0]).mean() > 0.5  # there are artefacts


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: stddev=-0.1"):
        kt.layers.RandomGaussianNoise(-0.1)
    with pytest.raises(ValueError, match="Received: rate=1.5"):
        kt.layers.SaltAndPepperNoise(1.5)
    with pytest.raises(ValueError, match="Received: factor=1.2"):
        kt.layers.RandomLensDistortion(1.2)
    with pytest.raises(ValueError, match="Received: fill_mode='wrap'"):
        kt.layers.RandomLensDistortion(fill_mode="wrap")
    with pytest.raises(ValueError, match="Received: max_quality=101"):
        kt.layers.RandomJpegQuality(50, 101)
    with pytest.raises(ValueError, match="Received: max_quality=40"):
        kt.layers.RandomJpegQuality(50, 40)
    with pytest.raises(ValueError, match="Received: num_crops=6"):
        kt.layers.MultiCrop(4, 4, num_crops=6)
    with pytest.raises(ValueError, match="value_range"):
        kt.layers.SaltAndPepperNoise(value_range=(1, 0))
    with pytest.raises(ValueError, match="must fit"):
        kt.layers.MultiCrop(20, 4)(np.zeros((1, 8, 8, 1)))


def test_config_round_trips():
    for layer in random_layers(value_range=(0, 1), seed=3) + [kt.layers.MultiCrop(5, 4, num_crops=3, seed=1)]:
        rebuilt = assert_config_roundtrip(layer)
        assert rebuilt.seed == layer.seed


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the .keras format is backend-independent; the TensorFlow job loads it in a fresh process (15 s)")
def test_fresh_process_load_and_saved_model_export(images, tmp_path):
    """One model holding the issue-8 layers and loss, loaded in one fresh process (AutoAugment: config round trip only, its 50 core layers make this test ~40 s slower)."""
    inputs = keras.Input(images.shape[1:], dtype="uint8")
    # Keras's augmentation layers also augment when called without
    # `training`, as model.export's serving function does: TrainingOnly.
    augment = keras.Sequential(random_layers(autoaugment=False))
    x = kt.layers.TrainingOnly(augment)(inputs)
    x = kt.layers.Standardize("mean_image").adapt(images)(x)
    crops = kt.layers.MultiCrop(8, 8, num_crops=3, seed=0)(x, training=False)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(crops))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd",
        loss=kt.losses.SparseCategoricalCrossentropy(label_smoothing=0.1, convention="lecture", from_logits=True),
    )
    raw = images.astype("uint8")
    expected = keras.ops.convert_to_numpy(model(raw, training=False))
    path = tmp_path / "all.keras"
    model.save(path)
    (got,) = fresh_process_predict([path], [raw], tmp_path)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(raw)), expected, atol=1e-5)  # no `training`
    reloaded = keras.saving.load_model(path)
    assert reloaded.loss.convention == "lecture"
    if BACKEND == "tensorflow":
        import tensorflow as tf

        model.export(str(tmp_path / "exported"), verbose=False)
        loaded = tf.saved_model.load(str(tmp_path / "exported"))
        np.testing.assert_allclose(loaded.serve(tf.constant(raw)).numpy(), expected, atol=1e-5)


def test_train_with_jit_compile_and_mixed_float16(images):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input(images.shape[1:])
        x = kt.layers.RandomGaussianNoise(0.05, value_range=(0, 1), seed=0)(inputs)
        x = kt.layers.RandomLensDistortion(0.2, value_range=(0, 1), seed=0)(x)
        assert x.dtype == "float16"
        model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(keras.layers.Flatten()(x)))
    finally:
        keras.config.set_dtype_policy(policy)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=True)
    unit = images / 255.0
    dense = model.layers[-1]
    before = [keras.ops.convert_to_numpy(w).copy() for w in dense.weights]
    history = model.fit(unit, np.ones((6, 2)), batch_size=3, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in dense.weights)
    assert np.abs(kernel - before[0]).max() > 0
    # Served: the augmentations are the identity, so the model is the Dense on
    # the float16-rounded pixels (its float32 math), under XLA in predict.
    flat = unit.astype("float16").astype("float64").reshape(len(unit), -1)
    np.testing.assert_allclose(model.predict(unit, verbose=0), flat @ kernel + bias, atol=2e-3)
    # In training the noise and the distortion change what the Dense sees.
    trained = keras.ops.convert_to_numpy(model(unit, training=True))
    assert np.abs(trained - (flat @ kernel + bias)).max() > 1e-2


@requires_tensorflow
def test_random_layers_train_under_a_two_replica_mirrored_strategy(mirrored_strategy, images):
    with mirrored_strategy.scope():
        inputs = keras.Input(images.shape[1:])
        x = inputs
        for layer in random_layers(autoaugment=False):  # AutoAugment: core layers, ~50 s to trace here
            x = layer(x)
        model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x / 255.0)))
        model.compile(optimizer="sgd", loss="mse")
    history = model.fit(images, np.zeros((6, 2)), batch_size=6, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_allclose(
        model.predict(images, batch_size=6, verbose=0), keras.ops.convert_to_numpy(model(images, training=False)), atol=1e-5
    )


# ------------------------------------------------------- one image or a batch
def single_image_subjects():
    """Every augmentation layer and `kt.data` policy, as (name, maker)."""
    subjects = {
        "RandomGaussianNoise": lambda: kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=3),
        "SaltAndPepperNoise": lambda: kt.layers.SaltAndPepperNoise(0.2, value_range=(0, 1), seed=3),
        "RandomLensDistortion": lambda: kt.layers.RandomLensDistortion(0.3, value_range=(0, 1), seed=3),
        "MultiCrop": lambda: kt.layers.MultiCrop(6, 5, num_crops=3, seed=3),
        "RandomShear": lambda: kt.layers.RandomShear(0.3, 0.3, seed=3),
        "AutoAugment": lambda: kt.layers.AutoAugment(value_range=(0, 1), seed=3),
        "TrainingOnly": lambda: kt.layers.TrainingOnly(keras.layers.RandomFlip(seed=3)),
    }
    if BACKEND == "tensorflow":
        subjects["RandomJpegQuality"] = lambda: kt.layers.RandomJpegQuality(10, 30, value_range=(0, 1), seed=3)
    for policy in ("geometric", "photometric", "other", "randaugment", "autoaugment"):
        subjects[f"policy_{policy}"] = lambda policy=policy: kt.data.augmentation(policy, channels=3, seed=3)
    return subjects


@pytest.fixture(scope="module")
def colour_images():
    return np.random.default_rng(1).uniform(0, 1, size=(4, 12, 10, 3)).astype("float32")


@pytest.mark.parametrize("name", sorted(single_image_subjects()))
def test_one_image_is_augmented_as_a_batch_of_one(name, colour_images):
    """One image `(h, w, c)` (a tf.data map before `.batch()`) is augmented as
    the batch holding only it would be, and the same object then takes batches
    (or first batches, then one image)."""
    make = single_image_subjects()[name]
    image = colour_images[0]
    one = keras.ops.convert_to_numpy(make()(image, training=True))
    as_batch = keras.ops.convert_to_numpy(make()(image[None], training=True))
    assert one.shape == as_batch.shape[1:], (one.shape, as_batch.shape)
    np.testing.assert_allclose(one, as_batch[0], atol=1e-5)
    for first, second in ((image, colour_images), (colour_images, image)):
        layer = make()
        a = keras.ops.convert_to_numpy(layer(first, training=True))
        b = keras.ops.convert_to_numpy(layer(second, training=True))
        for x, out in ((first, a), (second, b)):
            expected = x.shape if name != "MultiCrop" else x.shape[:-3] + (3, 6, 5, 3)
            assert out.shape == expected, (name, x.shape, out.shape)
    inference = keras.ops.convert_to_numpy(layer(image, training=False))
    if name == "MultiCrop":  # the fixed crops: centre first
        np.testing.assert_array_equal(inference[0], image[3:9, 2:7])
    else:
        np.testing.assert_allclose(inference, image, atol=1e-6)


@requires_tensorflow
@pytest.mark.slow
def test_dataset_map_before_batch(colour_images):
    """The usual pipeline: `dataset.map(augment)` on single images, then `.batch()`."""
    import tensorflow as tf

    cheap = kt.layers.AugmentationPolicy([
        kt.layers.RandomGaussianNoise(0.1, value_range=(0, 1), seed=3),
        kt.layers.RandomLensDistortion(0.3, value_range=(0, 1), seed=3),
        kt.layers.RandomJpegQuality(10, 30, value_range=(0, 1), seed=3),
    ])
    # (AutoAugment on one image: test_one_image_is_augmented_as_a_batch_of_one;
    # its 25 sub-policies traced in a map cost ~10 s.)
    for augment in (kt.data.augmentation("geometric", seed=3), cheap):
        dataset = tf.data.Dataset.from_tensor_slices((colour_images, np.arange(4)))
        batches = list(dataset.map(lambda x, y: (augment(x, training=True), y)).batch(2).as_numpy_iterator())
        augmented = np.concatenate([b[0] for b in batches])
        assert augmented.shape == colour_images.shape, (augment.name, augmented.shape)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(4))
        assert np.all((augmented >= -1e-6) & (augmented <= 1 + 1e-6)), augment.name
        if augment is cheap:  # noise on every image
            assert np.abs(augmented - colour_images).max(axis=(1, 2, 3)).min() > 1e-2
