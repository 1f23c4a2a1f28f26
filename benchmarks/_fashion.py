"""Fashion-MNIST subsets from the Debian package's idx files (no download)."""

import gzip
import os
import struct

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"


def _idx(path):
    with gzip.open(path, "rb") as f:
        _, _, dims = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(">" + "I" * dims, f.read(4 * dims))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def load_fashion(train=5000, test=2000, images=True):
    """`((x, y), (x_test, y_test))`, inputs in [0, 1], images `(28, 28, 1)` or flat."""
    x = _idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))[:train]
    y = _idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"))[:train]
    xt = _idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))[:test]
    yt = _idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))[:test]
    shape = (-1, 28, 28, 1) if images else (-1, 784)
    prep = lambda a: (a.reshape(shape) / 255.0).astype("float32")  # noqa: E731
    return (prep(x), y.astype("int64")), (prep(xt), yt.astype("int64"))
