"""Offline datasets: TFDS builders, splits, scaling, shuffling, errors."""

import numpy as np
import pytest

from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_digits_matches_scikit_learn_and_split_is_fixed(data_dir):
    from sklearn.datasets import load_digits

    import kerastoolkit as kt

    x_train, y_train = kt.data.load("digits", "train", as_numpy=True, data_dir=data_dir)
    x_test, y_test = kt.data.load("digits", "test", as_numpy=True, data_dir=data_dir)
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32 and x_train.min() == 0.0 and x_train.max() == 1.0
    # Every example is one of scikit-learn's digits, scaled by 1/16, with its label.
    bunch = load_digits()
    reference = {bunch.images[i].astype(np.uint8).tobytes(): bunch.target[i] for i in range(len(bunch.target))}
    for x, y in zip(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])):
        assert reference[(x[..., 0] * 16).round().astype(np.uint8).tobytes()] == y
    # The two splits together are the whole data set, and disjoint.
    assert len(x_train) + len(x_test) == len(bunch.target)
    # Stratified: every class is in the test split with its share.
    counts = np.bincount(y_test, minlength=10)
    expected = np.bincount(bunch.target, minlength=10) * 360 / 1797
    assert np.all(np.abs(counts - expected) <= 1)
    # Fixed: a second preparation in another folder gives the same split.
    other = kt.data.load("digits", "test", as_numpy=True, data_dir=data_dir + "_again")
    np.testing.assert_array_equal(np.sort(other[0].reshape(360, -1), axis=0), np.sort(x_test.reshape(360, -1), axis=0))


def test_tfds_load_works_offline(data_dir):
    import tensorflow_datasets as tfds

    import kerastoolkit as kt

    kt.data.prepare("digits", data_dir)
    ds = tfds.load("kt_digits", split="test", data_dir=data_dir, download=False, as_supervised=True)
    assert int(ds.cardinality()) == 360
    x, y = next(iter(ds))
    assert x.shape == (8, 8, 1) and int(y) in range(10)


def test_training_pipeline_shuffles_by_default_and_test_does_not(data_dir):
    import kerastoolkit as kt

    train = kt.data.load("digits", "train", batch_size=1437, data_dir=data_dir)
    first = next(iter(train))[1].numpy()
    second = next(iter(train))[1].numpy()
    assert not np.array_equal(first, second)  # reshuffled every epoch
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    test = kt.data.load("digits", "test", batch_size=360, data_dir=data_dir)
    np.testing.assert_array_equal(next(iter(test))[1].numpy(), next(iter(test))[1].numpy())
    batches = kt.data.load("digits", "train[:100]", batch_size=32, shuffle=False, data_dir=data_dir)
    assert [int(b[0].shape[0]) for b in batches] == [32, 32, 32, 4]


def test_mnist1d_is_generated_not_downloaded(data_dir, monkeypatch):
    import mnist1d.data

    import kerastoolkit as kt

    def no_download(*args, **kwargs):
        raise AssertionError("get_dataset downloads; it must never be called")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_download)
    x, y = kt.data.load("mnist1d", "train", as_numpy=True, data_dir=data_dir)
    reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    assert x.shape == (4000, 40) and set(np.unique(y)) == set(range(10))
    order = np.lexsort(x.T)
    ref_order = np.lexsort(reference["x"].T)
    np.testing.assert_allclose(x[order], reference["x"][ref_order], rtol=1e-6)
    np.testing.assert_array_equal(y[order], reference["y"][ref_order])


def test_fashion_mnist_reads_the_debian_files(tmp_path, monkeypatch):
    import gzip

    import kerastoolkit as kt
    from kerastoolkit.data import sources

    # A tiny stand-in in the idx format, so the test checks the parser exactly.
    rng = np.random.default_rng(0)
    folder = tmp_path / "fmnist"
    folder.mkdir()
    arrays = {}
    for split, (images_name, labels_name), n in [
        ("train", sources._FASHION_FILES["train"], 5),
        ("test", sources._FASHION_FILES["test"], 3),
    ]:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        with gzip.open(folder / images_name, "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes())
        with gzip.open(folder / labels_name, "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.tobytes())
        arrays[split] = (images, labels)
    monkeypatch.setenv(sources.FASHION_MNIST_ENV, str(folder))
    x, y = kt.data.load("fashion_mnist", "test", as_numpy=True, data_dir=str(tmp_path / "tfds"))
    order = np.argsort([a.tobytes() for a in x])
    ref = arrays["test"]
    ref_order = np.argsort([(a[..., None] / 255.0).astype(np.float32).tobytes() for a in ref[0]])
    np.testing.assert_allclose(x[order][..., 0], ref[0][ref_order] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y[order], ref[1][ref_order])


def test_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    import kerastoolkit as kt
    from kerastoolkit.data import sources

    monkeypatch.setenv(sources.FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        kt.data.load("fashion_mnist", data_dir=str(tmp_path / "tfds"))


def test_bad_arguments_are_named():
    import kerastoolkit as kt

    with pytest.raises(ValueError, match=r"Did you mean 'digits'.*Received: name='digit'"):
        kt.data.load("digit")
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        kt.data.load("digits", batch_size=0)


def test_split_slices_follow_the_full_split_order(data_dir):
    # `kerastoolkit train` holds out `train[:n]` for validation and trains on
    # `train[n:]`: the two must be the first n and the rest of "train".
    import kerastoolkit as kt

    x, y = kt.data.load("digits", "train", as_numpy=True, data_dir=data_dir)
    head_x, head_y = kt.data.load("digits", "train[:144]", as_numpy=True, data_dir=data_dir)
    tail = kt.data.load("digits", "train[144:]", batch_size=2000, shuffle=False, data_dir=data_dir)
    tail_x, tail_y = next(iter(tail))
    np.testing.assert_array_equal(head_x, x[:144])
    np.testing.assert_array_equal(head_y, y[:144])
    np.testing.assert_array_equal(tail_x.numpy(), x[144:])
    np.testing.assert_array_equal(tail_y.numpy(), y[144:])


def test_as_numpy_shuffles_with_the_seed_and_rejects_what_it_cannot_honour(data_dir):
    import kerastoolkit as kt

    x, y = kt.data.load("digits", "test", as_numpy=True, data_dir=data_dir)
    xs, ys = kt.data.load("digits", "test", as_numpy=True, shuffle=True, seed=3, data_dir=data_dir)
    again = kt.data.load("digits", "test", as_numpy=True, shuffle=True, seed=3, data_dir=data_dir)
    other = kt.data.load("digits", "test", as_numpy=True, shuffle=True, seed=4, data_dir=data_dir)
    # The permutation NumPy's generator gives for that seed, applied to the ordered split.
    order = np.random.default_rng(3).permutation(len(y))
    np.testing.assert_array_equal(xs, x[order])
    np.testing.assert_array_equal(ys, y[order])
    np.testing.assert_array_equal(again[1], ys)
    assert not np.array_equal(other[1], ys)
    with pytest.raises(ValueError, match=r"`batch_size` has no effect with `as_numpy=True`.*Received: batch_size=32"):
        kt.data.load("digits", "test", as_numpy=True, batch_size=32, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"`seed` has no effect.*Received: seed=1, shuffle=None"):
        kt.data.load("digits", "test", as_numpy=True, seed=1, data_dir=data_dir)


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_preparing_leaves_the_global_random_state_alone(name, tmp_path):
    # mnist1d's generator reseeds np.random; TFDS draws from `random`. A seeded
    # run must draw the same numbers whether or not it prepared the data.
    import random

    import kerastoolkit as kt

    random.seed(7)
    np.random.seed(7)
    kt.data.load(name, "test", as_numpy=True, data_dir=str(tmp_path / "fresh"))
    drawn = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    assert drawn == (random.random(), np.random.rand())


@pytest.mark.slow
def test_two_processes_prepare_the_same_folder_at_once(tmp_path):
    import subprocess
    import sys

    from tests.harness import subprocess_env

    script = (
        "import sys, kerastoolkit as kt\n"
        "x, y = kt.data.load('digits', 'test', as_numpy=True, data_dir=sys.argv[1])\n"
        "print(len(y))\n"
    )
    folder = str(tmp_path / "shared")
    processes = [
        subprocess.Popen([sys.executable, "-c", script, folder], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=subprocess_env())
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in processes]
    for out, err, code in results:
        assert code == 0, err[-2000:]
        assert out.split() == ["360"]
    # One of them prepared the data, the other waited and used it.
    assert sum("preparing kt_digits" in err for _, err, _ in results) == 1


def test_same_seed_same_model_whether_or_not_the_run_prepares_the_data(tmp_path, monkeypatch):
    # The first run of a seeded script prepares the dataset, later runs find it
    # prepared: both must train the same model (issue 14: 98.06% then 98.89%).
    import keras

    import kerastoolkit as kt

    monkeypatch.setenv(kt.data.datasets.DATA_DIR_ENV, str(tmp_path / "fresh"))

    def seeded_run():
        keras.utils.set_random_seed(0)
        x, y = kt.data.load("mnist1d", "train[:256]", as_numpy=True)
        model = keras.Sequential([keras.Input((40,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dropout(0.5), keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=64, epochs=1, shuffle=True, verbose=0)
        return [w.copy() for w in model.get_weights()]

    first = seeded_run()  # prepares mnist1d (its generator reseeds np.random)
    assert kt.data.prepare("mnist1d").is_prepared()
    second = seeded_run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
