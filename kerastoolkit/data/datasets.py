"""`kt.data.load`: the offline datasets as `tf.data.Dataset`s or NumPy arrays."""

import contextlib
import dataclasses
import difflib
import io
import logging
import os
import random
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf

from kerastoolkit.data import builders
from kerastoolkit.distribute.cluster import num_workers

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


@contextlib.contextmanager
def _preserved_random_state():
    """Restores Python's and NumPy's global random state on exit.

    Preparing a dataset must not change what a seeded run draws afterwards:
    mnist1d's generator reseeds `np.random`, and TFDS draws from `random`. Keras
    (on every backend) seeds its initializers and dropout from these two after
    `keras.utils.set_random_seed`, so a run that prepares the data first would
    otherwise train a different model from a run that finds it prepared.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def _quiet_tfds():
    """Hides TFDS's warnings about the half-written folders of a first preparation.

    ("Variant folder ... has no dataset_info.json": TFDS looks for an existing
    version while the builder is being created.) Errors still show.
    """
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _lock(path):
    """An exclusive inter-process lock on the file `path` (POSIX `flock`).

    Two processes preparing the same data dir at once (two `kerastoolkit
    train` runs, pytest-xdist) take turns: the second finds the data prepared.
    Where `fcntl` does not exist (Windows), no lock is taken and `prepare`
    tolerates losing the race instead.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_TFRECORD_FRAMING = 16  # bytes around each record: length (8), two CRCs (4 + 4)


def _damage(builder):
    """Why the builder's prepared files cannot be read, or `None` when they can.

    Checks what a preparation leaves: `dataset_info.json` and, for each
    split, its record files, whose total size is fixed by the info (the
    examples' bytes plus TFRecord's framing of each).
    """
    folder = builder.data_dir
    if not os.path.isdir(folder):
        return None  # not prepared at all
    if not os.path.exists(os.path.join(folder, "dataset_info.json")):
        return "dataset_info.json is missing"
    if not builder.info.splits:
        return "dataset_info.json lists no split"
    if getattr(builder.info.file_format, "value", None) != "tfrecord":
        return None
    for split in builder.info.splits.values():
        paths = [str(p) for p in split.filepaths]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            return f"{os.path.basename(missing[0])} is missing"
        expected = int(split.num_bytes) + _TFRECORD_FRAMING * int(split.num_examples)
        found = sum(os.path.getsize(p) for p in paths)
        if found != expected:
            return (f"the {split.name} split's record files hold {found} bytes, "
                    f"not {expected} (truncated or damaged)")
    return None


def _checked_builder(builder_class, data_dir):
    """The builder, and why its prepared files are damaged (`None` when fine)."""
    try:
        builder = builder_class(data_dir=data_dir)
    except (ValueError, OSError) as error:  # an unreadable dataset_info.json
        folder = os.path.join(data_dir, builder_class.name, str(builder_class.VERSION))
        return None, folder, f"{type(error).__name__}: {error}"
    return builder, builder.data_dir, _damage(builder)


def _remove_damaged(folder, reason):
    print(f"kerastoolkit: {folder} is damaged ({reason}): preparing it again",
          file=sys.stderr)
    try:
        shutil.rmtree(folder)
    except OSError as error:
        raise OSError(
            f"The prepared dataset in {folder} is damaged ({reason}) and could not "
            f"be removed ({error}). Delete that folder and load the dataset again: "
            "it is prepared anew, offline."
        ) from error


def prepare(name, data_dir=None):
    """Generates the dataset's TFDS files into `data_dir` once; offline.

    After this, `tfds.load(builder_name, data_dir=data_dir, download=False)`
    works, where `builder_name` is `"kt_" + name`. `load` calls it, so
    `kt.data.load(name)` is enough to prepare a dataset for `tfds.load`.

    What was prepared is checked first (`dataset_info.json` and every
    split's record files, whose sizes the info fixes): a damaged folder (a
    missing file, a truncated record file) is removed and prepared again,
    with a line on stderr naming it.

    Preparing leaves Python's and NumPy's global random state as it found
    it (a seeded run trains the same model whether or not it prepared the
    data), and concurrent calls from several processes on the same data dir
    are safe: one prepares, the others wait and then use its files.

    Args:
        name: `"digits"`, `"fashion_mnist"` or `"mnist1d"`.
        data_dir: TFDS data dir. Defaults to `default_data_dir()`.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        ValueError: for an unknown name.
        FileNotFoundError: when Fashion-MNIST's files are not installed.
        OSError: when a damaged folder cannot be removed (the message names
            the folder to delete).

    Example:
    >>> builder = kt.data.prepare("digits")
    >>> builder.name
    'kt_digits'
    """
    builder_class = info(name).builder
    data_dir = data_dir or default_data_dir()
    with _quiet_tfds():
        builder, _, damage = _checked_builder(builder_class, data_dir)
        if damage is None and builder.is_prepared():
            return builder
    lock = os.path.join(data_dir, f".{builder_class.name}.lock")
    with _quiet_tfds(), _preserved_random_state(), _lock(lock):
        # Again under the lock: another process may have prepared it meanwhile.
        builder, folder, damage = _checked_builder(builder_class, data_dir)
        if damage is not None:
            _remove_damaged(folder, damage)
            builder = builder_class(data_dir=data_dir)
        if builder.is_prepared():
            return builder
        print(
            f"kerastoolkit: preparing {builder.name} in {builder.data_dir} "
            "(offline, once)",
            file=sys.stderr,
        )
        # TFDS says "Downloading and preparing" and draws progress bars even
        # though these builders never download; keep the console clean.
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                io.StringIO()
            ):
                builder.download_and_prepare()
        except FileExistsError:
            # Lost a race without a lock (no fcntl): the winner's files are there.
            builder = builder_class(data_dir=data_dir)
            if not builder.is_prepared():
                raise
    return builder


def _check_load_arguments(split, batch_size, shuffle, seed, as_numpy):
    """`load`'s argument checks (see its Raises)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"`seed` must be an integer >= 0 or None. Received: seed={seed!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
    ):
        raise ValueError(
            f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}"
        )
    if as_numpy and batch_size is not None:
        raise ValueError(
            "`batch_size` has no effect with `as_numpy=True` (the arrays hold the whole "
            "split; pass `batch_size` to `fit`, or drop `as_numpy` for a batched dataset). "
            f"Received: batch_size={batch_size!r}"
        )
    if as_numpy and seed is not None and shuffle is not True:
        raise ValueError(
            "`seed` has no effect with `as_numpy=True` unless `shuffle=True` (the arrays "
            f"keep the split's order). Received: seed={seed!r}, shuffle={shuffle!r}"
        )
    shuffled = shuffle is True or (shuffle is None and not as_numpy and split.startswith("train"))
    if shuffled and seed is None and num_workers() > 1:
        raise ValueError(
            "`load` shuffles this split, and TF_CONFIG names a cluster of "
            f"{num_workers()} workers: without a seed every worker draws its "
            "own order, so the shares they train on overlap and miss examples. "
            "Pass the same `seed` on every worker. Received: seed=None"
        )


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
            `None` (unbatched). Not with `as_numpy=True` (arrays are not
            batched: pass `batch_size` to `fit`).
        shuffle: shuffle every epoch with a buffer holding the whole split.
            Defaults to `None`: shuffle training splits, not test splits.
            With `as_numpy=True`: `True` permutes the arrays once (with
            `seed`), `None` and `False` keep the split's order.
        seed: shuffle seed. Defaults to `None` (a fresh order every call).
            With a seed, the order of each pass is a function of `seed` and
            the epoch only (pass `e` is epoch `e`): list
            `dataset.epoch_callback` in `fit`'s callbacks and epoch `k` gets
            epoch `k`'s order also in a run resumed by
            `keras.callbacks.BackupAndRestore` in a new process (it would
            otherwise start again from epoch 0's order). With
            `as_numpy=True` only together with `shuffle=True`. Required
            for a shuffled dataset in a `TF_CONFIG` cluster: every worker
            must draw the same order, of which each takes its share.
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
        `as_numpy=True`. The dataset is sharded between workers by data
        (`AutoShardPolicy.DATA`) under `MultiWorkerMirroredStrategy`: a
        split is one file, which file-based sharding cannot divide. A
        shuffled dataset with a `seed` has an `epoch_callback` attribute (a
        `keras.callbacks.Callback`, see `seed`).

    Raises:
        ValueError: for an unknown name, a non-positive `batch_size`, a
            `seed` that is not an integer >= 0, or
            `batch_size` (or `seed` without `shuffle=True`) with
            `as_numpy=True`, which would have no effect; a shuffled dataset
            without `seed` in a `TF_CONFIG` cluster of several workers.
        FileNotFoundError: when Fashion-MNIST's files are not installed.

    Example:
    >>> train = kt.data.load("digits", "train", batch_size=32)
    >>> x_test, y_test = kt.data.load("digits", "test", as_numpy=True)
    >>> x, y = kt.data.load("digits", "train", as_numpy=True, shuffle=True, seed=0)
    >>> train = kt.data.load("digits", "train", batch_size=32, seed=0)
    >>> backup = keras.callbacks.BackupAndRestore("backup")
    >>> model.fit(train, epochs=10, callbacks=[train.epoch_callback, backup])
    """
    meta = info(name)
    _check_load_arguments(split, batch_size, shuffle, seed, as_numpy)
    dataset = prepare(name, data_dir).as_dataset(split=split, as_supervised=True)
    if shuffle is None:
        shuffle = not as_numpy and split.startswith("train")
    scale = meta.scale

    def to_inputs(x, y):
        return tf.cast(x, tf.float32) / scale, y

    if as_numpy:
        x, y = _whole_split(dataset.map(to_inputs) if not raw else dataset)
        x, y = x.numpy(), y.numpy()
        if shuffle:
            # A local generator: the global random state stays untouched.
            order = np.random.default_rng(seed).permutation(len(y))
            x, y = x[order], y[order]
        return x, y
    epoch = None
    if shuffle and seed is not None:
        dataset, epoch = _epoch_ordered(dataset, seed)
    else:
        dataset = dataset.cache()
        if shuffle:
            size = max(int(dataset.cardinality()), 1)
            dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    if not raw:
        dataset = dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size is not None:
        dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if epoch is not None:
        dataset.epoch_callback = _EpochOrder(epoch)
    return dataset


def _whole_split(dataset):
    """The split as one batch of tensors, `(x, y)`."""
    return next(iter(dataset.batch(max(int(dataset.cardinality()), 1))))


def _epoch_ordered(dataset, seed):
    """The split in an order that is a function of `seed` and the epoch only.

    Pass `e` over the dataset reads the epoch `e` from a variable (then
    advanced by one) and draws its permutation statelessly from
    `(seed, e)`: what TensorFlow's global seed was, or how often the
    dataset was iterated in another process, does not matter. The split is
    held in memory in its stored dtype (a shuffle buffer of the whole split
    would hold it too).

    Returns:
        `(dataset, epoch)`: the dataset and its epoch variable.
    """
    x, y = _whole_split(dataset)
    size = int(y.shape[0])
    with tf.init_scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="kt_data_epoch")
    seed = tf.constant(int(seed), tf.int64)

    def one_pass(_):
        e = epoch.assign_add(1) - 1
        order = tf.random.experimental.stateless_shuffle(
            tf.range(size, dtype=tf.int64), seed=tf.stack([seed, e])
        )
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(one_pass)
    # `flat_map` hides the size, which `fit` needs for its steps per epoch.
    indices = indices.apply(tf.data.experimental.assert_cardinality(size))
    return indices.map(lambda i: (tf.gather(x, i), tf.gather(y, i))), epoch


class _EpochOrder(keras.callbacks.Callback):
    """Sets a seeded dataset's epoch to `fit`'s at every epoch start.

    `kt.data.load(..., seed=s)` datasets carry one as `dataset.epoch_callback`:
    listed in `fit`'s callbacks, it makes epoch `k` of a run resumed by
    `keras.callbacks.BackupAndRestore` (in a new process, where the dataset
    has not been iterated) use the order of epoch `k`, and keeps the order
    unchanged by anything that iterated the dataset before `fit`.
    """

    def __init__(self, epoch):
        super().__init__()
        self._epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch.assign(int(epoch))
