"""Datasets across interruptions: a seeded order resumes, a damaged folder is redone."""

import os

import keras
import numpy as np
import pytest

import kerastoolkit as kt
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow

SPLIT = "train[:96]"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def labels_per_pass(dataset, passes):
    return [np.concatenate([y.numpy() for _, y in dataset]) for _ in range(passes)]


def test_a_seeded_order_is_a_function_of_the_seed_and_the_epoch(data_dir):
    import tensorflow as tf

    orders = labels_per_pass(kt.data.load("digits", SPLIT, batch_size=32, seed=5,
                                          data_dir=data_dir), 3)
    _, y = kt.data.load("digits", SPLIT, as_numpy=True, data_dir=data_dir)
    for order in orders:  # every pass is a permutation of the split
        assert sorted(order.tolist()) == sorted(y.tolist())
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    # A new dataset (a new process) told the epoch draws that epoch's order,
    # whatever TensorFlow's global seed.
    tf.random.set_seed(1234)
    again = kt.data.load("digits", SPLIT, batch_size=32, seed=5, data_dir=data_dir)
    again.epoch_callback.on_epoch_begin(2)
    np.testing.assert_array_equal(labels_per_pass(again, 1)[0], orders[2])
    other = kt.data.load("digits", SPLIT, batch_size=32, seed=6, data_dir=data_dir)
    assert not np.array_equal(labels_per_pass(other, 1)[0], orders[0])


def test_a_run_resumed_by_backup_and_restore_sees_the_uninterrupted_order(data_dir, tmp_path):
    def run(backup, stop_at=None):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(10)])
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        train = kt.data.load("digits", SPLIT, batch_size=32, seed=0, data_dir=data_dir)
        stop = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: (
            _raise() if epoch == stop_at else None))
        model.fit(train, epochs=4, verbose=0, callbacks=[
            train.epoch_callback, stop, keras.callbacks.BackupAndRestore(backup)])
        return model.get_weights()

    def _raise():
        raise RuntimeError("killed")

    full = run(str(tmp_path / "full"))
    with pytest.raises(RuntimeError, match="killed"):
        run(str(tmp_path / "resumed"), stop_at=2)
    resumed = run(str(tmp_path / "resumed"))  # new dataset, model, callbacks
    for a, b in zip(resumed, full):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("damage", ["no_dataset_info", "truncated_records"])
def test_a_damaged_prepared_dataset_is_prepared_again(tmp_path, damage, capsys):
    data_dir = str(tmp_path)
    builder = kt.data.prepare("digits", data_dir)
    if damage == "no_dataset_info":
        os.remove(os.path.join(builder.data_dir, "dataset_info.json"))
    else:
        (path,) = [str(p) for p in builder.info.splits["train"].filepaths]
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    capsys.readouterr()
    x, y = kt.data.load("digits", "train", as_numpy=True, data_dir=data_dir)
    assert x.shape == (1437, 8, 8, 1) and len(y) == 1437
    assert f"{builder.data_dir} is damaged" in capsys.readouterr().err


def test_a_damaged_folder_that_cannot_be_removed_is_named(tmp_path, monkeypatch):
    import shutil

    builder = kt.data.prepare("digits", str(tmp_path))
    os.remove(os.path.join(builder.data_dir, "dataset_info.json"))

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(shutil, "rmtree", refuse)
    with pytest.raises(OSError, match="Delete that folder") as caught:
        kt.data.load("digits", "train", data_dir=str(tmp_path))
    assert builder.data_dir in str(caught.value)
    assert "dataset_info.json is missing" in str(caught.value)
