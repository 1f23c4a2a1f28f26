"""Every use of Keras internals in kerastoolkit, version-guarded.

Each piece says why nothing public does the job, is guarded by the Keras
versions it was verified on (a clear error outside them) and has a test that
fails when Keras changes the internal (`tests/test_keras_compat.py`).
"""

import keras

#: Keras versions (major, minor) every piece below was verified on.
VERIFIED_KERAS = ((3, 15),)


def _keras_version():
    parts = keras.__version__.split(".")
    return int(parts[0]), int(parts[1])


def check_keras_version(what):
    """Raises `RuntimeError` when the installed Keras was not verified for `what`."""
    if _keras_version() not in VERIFIED_KERAS:
        raise RuntimeError(
            f"kerastoolkit's {what} uses Keras internals verified on Keras "
            f"{', '.join('.'.join(map(str, v)) for v in VERIFIED_KERAS)}; this is "
            f"Keras {keras.__version__}. Received: keras.__version__={keras.__version__!r}"
        )


# ------------------------------------------------------------------ issue 12:
# the training loss tracker (exact per-batch losses).
#
# Why: in `on_train_batch_end` Keras passes `logs["loss"]`, the running mean of
# the epoch weighted by batch size, and with `steps_per_execution > 1` only for
# every n-th step. Each batch's own loss is the increment of the tracker's
# `total` (sum of batch loss x batch size) and `count` (examples) over one
# `train_step`. `Model.metrics` (public) lists the tracker first; its `total`
# and `count` variables are attributes of `keras.metrics.Mean` that Keras does
# not document.


def loss_tracker_variables(model):
    """`(total, count)` of the model's training-loss tracker, or `None`.

    Args:
        model: a compiled Keras model.

    Returns:
        The two `keras.Variable`s of the `keras.metrics.Mean` named `"loss"`
        that `train_step` updates with `(loss, batch size)`, or `None` when
        the model has no such tracker (not compiled, custom `train_step`).

    Raises:
        RuntimeError: on a Keras version this was not verified on.
    """
    check_keras_version("exact per-batch loss recording")
    for metric in getattr(model, "metrics", None) or []:
        if isinstance(metric, keras.metrics.Mean) and metric.name == "loss":
            total = getattr(metric, "total", None)
            count = getattr(metric, "count", None)
            if total is not None and count is not None:
                return total, count
    return None


# ------------------------------------------------------------------ issue 12:
# Keras's global seed generator (preflight leaves the random state untouched).
#
# Why: unseeded Keras random ops (initializers of a cloned model, dropout
# without a seed) advance the global `SeedGenerator` Keras keeps in its global
# state; there is no public API to read or restore it.


def global_seed_state():
    """The global seed generator's state (a NumPy copy), or `None` if absent."""
    check_keras_version("random-state restoring")
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    gen = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    if gen is None:
        return None
    return keras.ops.convert_to_numpy(gen.state).copy()


def set_global_seed_state(state):
    """Puts back a state from `global_seed_state` (`None`: no generator)."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    name = seed_generator.GLOBAL_SEED_GENERATOR
    if state is None:
        global_state.set_global_attribute(name, None)
        return
    gen = global_state.get_global_attribute(name)
    if gen is None:
        gen = seed_generator.global_seed_generator()
    gen.state.assign(state)
