"""The examples preflight reads, in the order `fit` will feed them.

Reading must not change what `fit` then sees:

- arrays are only indexed;
- a `tf.data.Dataset` is read through a fresh copy of its pipeline
  (`fresh_copy`): iterating the user's own object would advance the seed
  generator of a `shuffle(..., reshuffle_each_iteration=True)` and hand `fit`
  the second epoch's order in its first;
- a `keras.utils.PyDataset` is indexed (`data[i]`), which changes nothing;
- a one-shot iterator (a generator object) cannot be read without taking the
  batches `fit` would get: it is refused, and a function that returns a fresh
  generator is accepted instead.
"""

import uuid

import keras
import numpy as np


class Sample:
    """The examples read: `x`, `y` in training order, and how they were read.

    Attributes:
        x, y: NumPy arrays (`x` may be a structure of arrays).
        order_known: whether the order is the one `fit` will use (arrays
            that `fit` shuffles come in a random order: the order check is
            skipped for them).
        full_x: every input array when the data are arrays (the NaN check
            reads them all), else `x`.
        batch: the size of the first batch read (datasets bring their own).
        steps_per_epoch: the batches in one epoch when known, else `None`.
        note: what could not be done as usual, or `None`.
    """

    def __init__(self, x, y, order_known, full_x=None, batch=None, steps_per_epoch=None,
                 note=None):
        self.x, self.y = x, y
        self.order_known = order_known
        self.full_x = x if full_x is None else full_x
        self.batch = batch
        self.steps_per_epoch = steps_per_epoch
        self.note = note

    def __len__(self):
        return len(self.y)


def is_arrays(data):
    return isinstance(data, (tuple, list)) and len(data) in (2, 3)


def _is_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def check_shuffle(shuffle):
    if shuffle not in (True, False, "batch"):
        raise ValueError(
            "`shuffle` must be True, False or 'batch' (as `fit` takes it). "
            f"Received: shuffle={shuffle!r}"
        )


def take(data, num_examples, batch_size, shuffle, rng):
    """A `Sample` of at most `num_examples` examples, in training order.

    Args:
        data: `(x, y)` or `(x, y, sample_weight)` arrays, a batched
            `tf.data.Dataset`, a `keras.utils.PyDataset`, a re-iterable of
            batches, or a function returning a fresh iterable of batches.
        num_examples: how many examples to read.
        batch_size: the batch size `fit` uses for arrays.
        shuffle: how `fit` shuffles arrays and `PyDataset`s: `True` (a new
            permutation), `"batch"` (batch-sized chunks) or `False`.
        rng: a `numpy.random.Generator` (preflight's own, not the global one).

    Raises:
        ValueError: for a one-shot iterator or data that yield no batch.
    """
    if is_arrays(data):
        return _from_arrays(data, num_examples, batch_size, shuffle, rng)
    if isinstance(data, keras.utils.PyDataset):
        return _from_indexed(data, num_examples, shuffle, rng)
    note, steps = None, None
    if _is_dataset(data):
        cardinality = int(data.cardinality())
        steps = cardinality if cardinality > 0 else None
        data, note = fresh_copy(data)
    elif callable(data) and not hasattr(data, "__iter__"):
        data = data()  # a generator function: a fresh generator
    elif not hasattr(data, "__iter__") or iter(data) is data:
        raise ValueError(
            "`data` must be arrays, a `tf.data.Dataset`, a `keras.utils.PyDataset`, "
            "or a function that makes the generator: a one-shot iterator (a "
            "generator object) cannot be read without taking away the batches "
            f"`fit` is going to get. Received: data={data!r}"
        )
    x, y, first = _read_batches(data, num_examples)
    return Sample(x, y, order_known=True, batch=first, steps_per_epoch=steps, note=note)


def _from_arrays(data, num_examples, batch_size, shuffle, rng):
    x, y = data[0], data[1]
    n = len(keras.tree.flatten(x)[0])
    k = min(n, num_examples)
    if shuffle is True:  # fit draws a permutation: any random sample is as good
        idx = rng.permutation(n)[:k]
    elif shuffle == "batch":  # whole batch-sized chunks, in a random order
        starts = rng.permutation(-(-n // batch_size)) * batch_size
        idx = np.concatenate([np.arange(s, min(s + batch_size, n)) for s in starts])[:k]
    else:
        idx = np.arange(k)

    def pick(a):
        return np.asarray(a)[idx]

    return Sample(keras.tree.map_structure(pick, x), pick(y), order_known=shuffle is not True,
                  full_x=x, batch=batch_size, steps_per_epoch=-(-n // batch_size))


def _from_indexed(data, num_examples, shuffle, rng):
    """Batches of a `PyDataset` by index (`fit` shuffles their order when asked)."""
    count = data.num_batches
    order = range(2**31) if count is None else (
        rng.permutation(count) if shuffle else np.arange(count))
    x, y, first = _read_batches(_indexed(data, order), num_examples)
    return Sample(x, y, order_known=True, batch=first, steps_per_epoch=count)


def _indexed(data, order):
    for i in order:
        try:
            yield data[int(i)]
        except IndexError:
            return


def _read_batches(batches, num_examples):
    xs, ys, seen = [], [], 0
    for batch in batches:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        if y is None:
            raise ValueError(
                "`data` must yield `(x, y)` batches (preflight needs the labels). "
                f"Received: a batch of type {type(batch).__name__} without `y`"
            )
        xs.append(keras.tree.map_structure(np.asarray, x))
        ys.append(np.asarray(y))
        seen += len(ys[-1])
        if seen >= num_examples:
            break
    if not ys:
        raise ValueError("`data` yielded no batch. Received: data=<empty>")
    x = keras.tree.map_structure(lambda *a: np.concatenate(a)[:num_examples], *xs)
    return x, np.concatenate(ys)[:num_examples], len(ys[0])


def fresh_copy(dataset):
    """A copy of a `tf.data` pipeline with its own state: `(copy, note)`.

    The pipeline is serialized to its graph and rebuilt. The rebuilt
    `shuffle` ops would look up the original's seed generator by its resource
    name and advance it, so every resource handle in the graph is renamed:
    the copy makes its own generator from the same seeds, and its first pass
    is the order the original's next pass has, when that is its first.
    Python functions (`from_generator`, `py_function`) are kept by reference
    (`external_state_policy` IGNORE), so they must run in this process.

    Returns:
        `(copy, None)`, or `(dataset, note)` when the pipeline cannot be
        serialized: it is then read itself, and the note says so.
    """
    import tensorflow as tf  # inherently needed: the user's pipeline is TensorFlow's

    try:
        graph = tf.raw_ops.DatasetToGraphV2(
            input_dataset=tf.data.experimental.to_variant(dataset),
            external_state_policy=1,  # IGNORE: Python functions stay in-process
            strip_device_assignment=True,
        )
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(graph.numpy())
        suffix = "_kt_preflight_" + uuid.uuid4().hex
        for node in graph_def.node:
            if node.op == "Const" and node.attr["dtype"].type == tf.resource.as_datatype_enum:
                for handle in node.attr["value"].tensor.resource_handle_val:
                    handle.name += suffix
        variant = tf.raw_ops.DatasetFromGraph(graph_def=graph_def.SerializeToString())
        return tf.data.experimental.from_variant(variant, dataset.element_spec), None
    except (tf.errors.OpError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        return dataset, (
            "the dataset could not be copied "
            f"({type(error).__name__}: {first_line}); it was read itself, so a "
            "pipeline that reshuffles every iteration moves on by one order."
        )
