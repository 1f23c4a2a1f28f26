"""Scaling rules for the learning rate when the global batch size changes."""

from kerastoolkit import _checks


def scale_learning_rate(base_learning_rate, global_batch_size, base_batch_size=256):
    """The linear scaling rule: the rate grows with the global batch size.

    ```
    learning_rate = base_learning_rate * global_batch_size / base_batch_size
    ```

    "When the minibatch size is multiplied by k, multiply the learning rate
    by k" (Goyal et al. 2017, §2.1), e.g. 0.1 per 256 examples gives 0.4 for
    a global batch of 1,024 (all replicas together). Use it with a gradual
    warmup (`kt.schedules.Warmup`, 5 epochs in the paper): the rule breaks
    down in the first epochs, when the weights change fastest.

    Args:
        base_learning_rate: positive float, the rate that works at
            `base_batch_size`.
        global_batch_size: positive int, the batch size summed over every
            replica and worker.
        base_batch_size: positive int, the batch size `base_learning_rate`
            is stated for. Defaults to `256`.

    Returns:
        The scaled learning rate, a float.

    Raises:
        TypeError: for a non-numeric rate or a non-integer batch size.
        ValueError: for a non-positive rate or batch size.

    Example:
    >>> scale_learning_rate(0.1, 1024)
    0.4

    References:
        - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677), "Accurate,
          Large Minibatch SGD: Training ImageNet in 1 Hour", §2.1-2.2.
    """
    base_learning_rate = _checks.check_real(
        "base_learning_rate", base_learning_rate, low=0.0, low_open=True
    )
    global_batch_size = _checks.check_int("global_batch_size", global_batch_size, 1)
    base_batch_size = _checks.check_int("base_batch_size", base_batch_size, 1)
    return base_learning_rate * global_batch_size / base_batch_size
