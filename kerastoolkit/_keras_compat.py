"""Every use of Keras internals, version-guarded and tested.

Each section below works around one upstream problem that public Keras API
cannot solve. A section is applied only on the Keras versions it was verified
on and raises a clear error on others; its tests fail when Keras changes the
internals it relies on, so that an upgrade cannot train silently wrong.
"""

# --- multi-worker (issue 11) ---
#
# keras-team/keras#20585: `model.fit` under `tf.distribute.MultiWorkerMirroredStrategy`
# fails at the start of `fit` with "Attempt to convert a value (PerReplica...)
# with an unsupported type". Reproduced with Keras 3.15.1 / TensorFlow 2.21 with
# two workers on 127.0.0.1. There are two causes, both in
# `keras/src/backend/tensorflow/trainer.py`:
#
# 1. `TensorFlowTrainer._maybe_symbolic_build` takes the first distributed batch
#    and calls `strategy.reduce("MEAN", batch, axis=None)` on the whole
#    *structure* `(x, y)` of `PerReplica` values, eagerly, only to learn the
#    shapes for building the model. `CollectiveAllReduceExtended._reduce_to`
#    unwraps a single `DistributedValues`, but a tuple of them goes to the
#    cross-device ops, which try `convert_to_tensor` on it: the error above.
#    With one worker the same call takes a local short cut, which is why
#    `MirroredStrategy` works. Fix: build from the first local replica's
#    values (`strategy.experimental_local_results(v)[0]`). Building only needs
#    shapes and dtypes; no collective is needed.
# 2. `reduce_per_replica`, which reduces a step's outputs (the metric results)
#    over the replicas, calls `strategy.reduce("MEAN", v, axis=0)` in
#    multi-worker mode. The outputs are scalars, so `axis=0` fails ("Invalid
#    reduction dimension 0 for input with 0 dimensions"). Fix: `axis=None`,
#    the mean over all replicas of all workers, i.e. exactly what Keras does
#    over the local replicas of `MirroredStrategy`. These are the per-batch
#    logs; the epoch logs (the `History`) are read by Keras from the metric
#    variables in cross-replica context, which sums their totals and counts
#    over every replica of every worker: the global metric.
#
# The fix is opt-in: `enable_multi_worker_fit()` installs it (called by
# `kerastoolkit.distribute.enable_multi_worker()` and by
# `kerastoolkit.distribute.strategy()` when it picks a multi-worker strategy);
# `disable_multi_worker_fit()` puts Keras's functions back. Both replacements
# delegate to Keras's own functions unless the strategy is a
# `MultiWorkerMirroredStrategy` in multi-worker mode, so single-worker
# training is unchanged.

import hashlib
import inspect

MULTI_WORKER_KERAS_VERSIONS = ("3.15.",)
"""Keras versions (prefixes) the multi-worker fix was verified on."""

# sha256 (first 16 hex digits) of the source of each Keras internal the fix
# replaces or calls, as read from Keras 3.15.1. A different source means Keras
# changed the code this fix was written against: it then refuses to apply.
MULTI_WORKER_FINGERPRINTS = {
    "TensorFlowTrainer._maybe_symbolic_build": "92a504f5eba9b29f",
    "reduce_per_replica": "2e7d54b1e6edc29a",
    "_collective_all_reduce_multi_worker": "0302369d850e6694",
}

_ORIGINALS = {}


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def _internals(trainer):
    return {
        "TensorFlowTrainer._maybe_symbolic_build": trainer.TensorFlowTrainer._maybe_symbolic_build,
        "reduce_per_replica": trainer.reduce_per_replica,
        "_collective_all_reduce_multi_worker": trainer._collective_all_reduce_multi_worker,
    }


def source_fingerprint(function):
    """The first 16 hex digits of the sha256 of `function`'s source."""
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def multi_worker_fingerprints():
    """The fingerprints of the Keras internals the multi-worker fix relies on,
    read from the installed Keras (Keras's own functions, even when patched)."""
    trainer = _trainer_module()
    current = _internals(trainer)
    current.update(_ORIGINALS)
    return {name: source_fingerprint(fn) for name, fn in current.items()}


def check_multi_worker_keras():
    """Raises `RuntimeError` unless the installed Keras is one the fix was verified on."""
    import keras

    version = keras.__version__
    if not version.startswith(MULTI_WORKER_KERAS_VERSIONS):
        raise RuntimeError(
            "kerastoolkit's multi-worker fix for `model.fit` under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585) was verified "
            f"on Keras {', '.join(v + 'x' for v in MULTI_WORKER_KERAS_VERSIONS)} "
            "only; it patches Keras internals and is not applied on other "
            "versions. Check whether your Keras still needs it (see the issue) "
            f"and upgrade kerastoolkit. Received: keras.__version__={version!r}"
        )
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "MultiWorkerMirroredStrategy needs the TensorFlow backend. "
            f"Received: keras.backend.backend()={keras.backend.backend()!r}"
        )
    changed = {
        name: got
        for name, got in multi_worker_fingerprints().items()
        if got != MULTI_WORKER_FINGERPRINTS[name]
    }
    if changed:
        raise RuntimeError(
            "The Keras internals that kerastoolkit's multi-worker fix "
            "(keras-team/keras#20585) replaces have changed in this Keras "
            f"{version}: {sorted(changed)}. The fix is not applied. "
            f"Received: fingerprints={changed}"
        )


def multi_worker_fit_enabled():
    """Whether `enable_multi_worker_fit` is installed."""
    return bool(_ORIGINALS)


def enable_multi_worker_fit():
    """Makes `model.fit` work under `MultiWorkerMirroredStrategy` (keras#20585).

    Idempotent. Only on the Keras versions in `MULTI_WORKER_KERAS_VERSIONS`.

    Raises:
        RuntimeError: on another Keras version, another backend, or when the
            Keras internals differ from the ones the fix was written for.
    """
    if _ORIGINALS:
        return
    check_multi_worker_keras()
    import tensorflow as tf
    from keras.src import tree

    trainer = _trainer_module()
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = trainer.reduce_per_replica
    multi_worker = trainer._collective_all_reduce_multi_worker

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras reduces the first batch across workers, which fails (see above).
        if (
            self._distribute_strategy is None
            or iterator is None
            or not multi_worker(self.distribute_strategy)
        ):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        strategy = self.distribute_strategy

        def first_local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, it in iterator:
            data_batch = tree.map_structure(first_local, next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values
            )
        return original_reduce(values, strategy, reduction)

    _maybe_symbolic_build.__doc__ = original_build.__doc__
    _maybe_symbolic_build.__kerastoolkit_fix__ = "keras-team/keras#20585"
    reduce_per_replica.__doc__ = original_reduce.__doc__
    reduce_per_replica.__kerastoolkit_fix__ = "keras-team/keras#20585"
    _ORIGINALS["TensorFlowTrainer._maybe_symbolic_build"] = original_build
    _ORIGINALS["reduce_per_replica"] = original_reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica


def disable_multi_worker_fit():
    """Puts back Keras's own functions replaced by `enable_multi_worker_fit`."""
    if not _ORIGINALS:
        return
    trainer = _trainer_module()
    trainer.TensorFlowTrainer._maybe_symbolic_build = _ORIGINALS.pop(
        "TensorFlowTrainer._maybe_symbolic_build"
    )
    trainer.reduce_per_replica = _ORIGINALS.pop("reduce_per_replica")


# --- end multi-worker (issue 11) ---
