"""`kt.data.load`: the offline datasets as `tf.data.Dataset`s or NumPy arrays."""

import contextlib
import dataclasses
import difflib
import io
import os
import sys

import numpy as np
import tensorflow as tf

from kerastoolkit.data import builders

DATA_DIR_ENV = "KERASTOOLKIT_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the toolkit knows about one offline dataset.

    Attributes:
        name: the toolkit's name (`"digits"`).
        builder: the TFDS builder class; `builder.name` is the TFDS name.
        input_shape: shape of one input after `load`.
        num_classes: number of classes.
        scale: raw values are divided by this to give inputs in [0, 1].
        description: one line for `--help`.
    """

    name: str
    builder: type
    input_shape: tuple
    num_classes: int
    scale: float
    description: str


DATASETS = {
    "digits": DatasetInfo(
        "digits", builders.KtDigits, (8, 8, 1), 10, 16.0,
        "scikit-learn's 8x8 digits, 1,437 train / 360 test (embedded, the default)",
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", builders.KtFashionMnist, (28, 28, 1), 10, 255.0,
        "Fashion-MNIST 28x28, 60,000 train / 10,000 test (Debian dataset-fashion-mnist)",
    ),
    "mnist1d": DatasetInfo(
        "mnist1d", builders.KtMnist1d, (40,), 10, 1.0,
        "mnist1d signals of length 40, 4,000 train / 1,000 test (generated)",
    ),
}


def info(name):
    """The `DatasetInfo` of a dataset name; unknown names suggest the closest ones.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown dataset. Available: {', '.join(DATASETS)}.{hint} "
            f"Received: name={name!r}"
        )
    return DATASETS[name]


def default_data_dir():
    """Where the TFDS builders are prepared: `$KERASTOOLKIT_DATA_DIR` or `~/.cache/kerastoolkit/tensorflow_datasets`."""
    return os.environ.get(
        DATA_DIR_ENV,
        os.path.join(os.path.expanduser("~"), ".cache", "kerastoolkit", "tensorflow_datasets"),
    )


def prepare(name, data_dir=None):
    """Generates the dataset's TFDS files into `data_dir` once; offline.

    After this, `tfds.load(builder_name, data_dir=data_dir, download=False)`
    works, where `builder_name` is `"kt_" + name`.

    Args:
        name: `"digits"`, `"fashion_mnist"` or `"mnist1d"`.
        data_dir: TFDS data dir. Defaults to `default_data_dir()`.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.
    """
    builder = info(name).builder(data_dir=data_dir or default_data_dir())
    if not builder.is_prepared():
        print(
            f"kerastoolkit: preparing {builder.name} in {builder.data_dir} "
            "(offline, once)",
            file=sys.stderr,
        )
        # TFDS says "Downloading and preparing" and draws progress bars even
        # though these builders never download; keep the console clean.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
            io.StringIO()
        ):
            builder.download_and_prepare()
    return builder


def load(
    name,
    split="train",
    *,
    batch_size=None,
    shuffle=None,
    seed=None,
    as_numpy=False,
    data_dir=None,
    raw=False,
):
    """Loads an offline dataset as `(x, y)` pairs with inputs scaled to [0, 1].

    Args:
        name: `"digits"`, `"fashion_mnist"` or `"mnist1d"`.
        split: a TFDS split string: `"train"`, `"test"` or a slice such as
            `"train[:80%]"`. Defaults to `"train"`.
        batch_size: batch the dataset (and prefetch) when given. Defaults to
            `None` (unbatched).
        shuffle: shuffle every epoch with a buffer holding the whole split.
            Defaults to `None`: shuffle training splits, not test splits.
        seed: shuffle seed. Defaults to `None`.
        as_numpy: return `(x, y)` NumPy arrays instead of a dataset.
            Defaults to `False`.
        data_dir: TFDS data dir. Defaults to `default_data_dir()`.
        raw: keep the stored values and dtype (`uint8` pixels in [0, 255]
            for Fashion-MNIST, in [0, 16] for digits) instead of float32 in
            [0, 1]: for a model that standardizes inside and serves raw
            images (`kt.models.default_classifier`). Defaults to `False`.

    Returns:
        A `tf.data.Dataset` of `(x, y)` with `x` float32 (or the stored
        dtype with `raw=True`) and `y` int64, or a pair of arrays when
        `as_numpy=True`.

    Raises:
        ValueError: for an unknown name or a non-positive `batch_size`.
        FileNotFoundError: when Fashion-MNIST's files are not installed.

    Example:
    >>> train = kt.data.load("digits", "train", batch_size=32)
    >>> x_test, y_test = kt.data.load("digits", "test", as_numpy=True)
    """
    meta = info(name)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(
            f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}"
        )
    builder = prepare(name, data_dir)
    dataset = builder.as_dataset(split=split, as_supervised=True)
    scale = meta.scale

    def to_inputs(x, y):
        return tf.cast(x, tf.float32) / scale, y

    if not raw:
        dataset = dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if as_numpy:
        size = int(dataset.cardinality())
        x, y = next(iter(dataset.batch(max(size, 1))))
        return x.numpy(), y.numpy()
    dataset = dataset.cache()
    if shuffle is None:
        shuffle = split.startswith("train")
    if shuffle:
        size = int(dataset.cardinality())
        dataset = dataset.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return dataset
