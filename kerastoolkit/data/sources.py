"""Raw arrays of the offline datasets, read from what is on this machine.

Nothing here touches the network: digits ships inside scikit-learn,
Fashion-MNIST comes from the Debian package `dataset-fashion-mnist`, and
mnist1d is generated from code.
"""

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "KERASTOOLKIT_FASHION_MNIST_DIR"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

DIGITS_TEST_SIZE = 360  # 20% of 1,797, stratified, fixed seed
DIGITS_SPLIT_SEED = 0


def digits():
    """scikit-learn's 1,797 8×8 digits with a fixed, stratified train/test split.

    Returns:
        `{"train": (x, y), "test": (x, y)}` with `x` uint8 of shape
        `(n, 8, 8, 1)` in [0, 16] and `y` int64 labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        bunch.target.astype(np.int64),
        test_size=DIGITS_TEST_SIZE,
        stratify=bunch.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def fashion_mnist_dir():
    """The folder of the Fashion-MNIST idx files (`$KERASTOOLKIT_FASHION_MNIST_DIR` wins)."""
    return os.environ.get(FASHION_MNIST_ENV, FASHION_MNIST_DIR)


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim < 1:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic={magic:#x}).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {shape}, found {array.size} bytes.")
    return array.reshape(shape)


def fashion_mnist():
    """Fashion-MNIST from the Debian package's idx files.

    Returns:
        `{"train": (x, y), "test": (x, y)}` with `x` uint8 of shape
        `(n, 28, 28, 1)` and `y` int64 labels (60,000 and 10,000 examples).

    Raises:
        FileNotFoundError: when the idx files are missing, saying how to
            install them.
    """
    directory = fashion_mnist_dir()
    splits = {}
    for split, (images_file, labels_file) in _FASHION_FILES.items():
        paths = [os.path.join(directory, images_file), os.path.join(directory, labels_file)]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"Fashion-MNIST is not installed: {missing[0]} does not exist. "
                "Install it with `sudo apt-get install dataset-fashion-mnist` "
                f"(Debian/Ubuntu), or point ${FASHION_MNIST_ENV} at a folder "
                "holding the four original idx .gz files."
            )
        images = _read_idx(paths[0])[..., None]
        labels = _read_idx(paths[1]).astype(np.int64)
        splits[split] = (images, labels)
    return splits


def mnist1d():
    """mnist1d generated from code with its default arguments (no download).

    Returns:
        `{"train": (x, y), "test": (x, y)}` with `x` float32 of shape
        `(n, 40)` and `y` int64 labels (4,000 and 1,000 examples).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # never get_dataset(): it downloads
    return {
        "train": (data["x"].astype(np.float32), data["y"].astype(np.int64)),
        "test": (data["x_test"].astype(np.float32), data["y_test"].astype(np.int64)),
    }
