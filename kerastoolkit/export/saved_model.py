"""SavedModel export in the versioned layout TensorFlow Serving reads."""

import os
import re
import shutil
import tempfile

import keras

from kerastoolkit.distribute.cluster import chief_path

_VERSION = re.compile(r"^[0-9]+$")


def versions(root):
    """The integer versions already exported under `root`, sorted."""
    if not os.path.isdir(root):
        return []
    return sorted(int(n) for n in os.listdir(root) if _VERSION.match(n))


def next_version(root):
    """The next free version number under `root`: 1, 2, ..."""
    found = versions(root)
    return found[-1] + 1 if found else 1


def saved_model(model, root, version=None, verbose=False):
    """Exports `model` as a SavedModel to `root/<version>/`.

    The layout is the one TensorFlow Serving watches: every export is a new
    integer version folder. The model is written to a hidden folder first and
    renamed into place, so a server never sees a half-written version and
    two exports at once get different numbers. The serving endpoint is
    `serve` (also the `serving_default` signature), from `model.export`.

    Args:
        model: a built Keras model.
        root: the model's folder, e.g. `"savedmodels/digits"`.
        version: positive integer version. Defaults to `None`: the next
            free number (1, 2, ...).
        verbose: let Keras print the endpoint summary. Defaults to `False`.

    Returns:
        The path of the written version folder.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for a non-positive `version` or one that already exists.

    Example:
    >>> path = kt.export.saved_model(model, "savedmodels/digits")
    >>> served = kt.export.load(path)
    >>> probabilities = served(x_test)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if version is not None and (not isinstance(version, int) or version <= 0):
        raise ValueError(f"`version` must be a positive integer. Received: version={version!r}")
    root = chief_path(root)  # under a multi-worker strategy, only the chief's export stays
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=root)
    try:
        model.export(os.path.join(staging, "model"), format="tf_saved_model", verbose=verbose)
        while True:
            number = next_version(root) if version is None else version
            target = os.path.join(root, str(number))
            if os.path.exists(target):
                if version is not None:
                    raise ValueError(
                        f"Version {version} already exists in {root}. Received: version={version}"
                    )
                continue
            try:
                os.rename(os.path.join(staging, "model"), target)
                return target
            except OSError:
                if version is not None or not os.path.exists(target):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class ServedModel:
    """A loaded SavedModel that stays referenced while its functions run.

    `tf.saved_model.load(path).serve(x)` in one expression fails in TF 2.21
    ("Called a function referencing variables which have been deleted"):
    this object keeps the loaded model alive.

    Args:
        path: a SavedModel folder (one version folder).
        endpoint: the function to call. Defaults to `"serve"`.
    """

    def __init__(self, path, endpoint="serve"):
        import tensorflow as tf

        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"No saved_model.pb in {path}. Received: path={path!r}")
        self.path = path
        self.loaded = tf.saved_model.load(path)
        if not hasattr(self.loaded, endpoint):
            raise ValueError(
                f"The SavedModel at {path} has no endpoint {endpoint!r}. "
                f"Signatures: {list(self.loaded.signatures)}. Received: endpoint={endpoint!r}"
            )
        self.endpoint = getattr(self.loaded, endpoint)

    def __call__(self, x):
        """Runs the endpoint; returns a NumPy array."""
        import tensorflow as tf

        return self.endpoint(tf.convert_to_tensor(x)).numpy()


def load(path, endpoint="serve"):
    """Loads an exported version folder for inference; see `ServedModel`."""
    return ServedModel(path, endpoint=endpoint)
