"""Learning-curve plots (matplotlib, imported on first use)."""

import os


def _history_dict(history):
    if hasattr(history, "history"):  # a keras.callbacks.History
        return dict(history.history)
    if isinstance(history, dict):
        return dict(history)
    raise TypeError(
        "`history` must be a keras History or a dict of per-epoch lists. "
        f"Received: history={type(history).__name__}"
    )


def plot_history(history, path, title=None):
    """Saves the per-epoch learning curves as a PNG.

    One panel for the loss (`loss` and `val_loss`) and one for every other
    metric with its `val_` twin, epochs on the x axis.

    Args:
        history: a `keras.callbacks.History` or a dict of per-epoch lists.
        path: where to write the PNG.
        title: figure title. Defaults to `None`.

    Returns:
        `path`.

    Raises:
        TypeError: if `history` is neither a History nor a dict.
        ValueError: if it has no `loss` entry.
    """
    logs = _history_dict(history)
    if "loss" not in logs:
        raise ValueError(
            f"`history` has no 'loss' entry. Received keys: {sorted(logs)}"
        )
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = ["loss"] + sorted(
        k for k in logs if not k.startswith("val_") and k not in ("loss", "learning_rate")
    )
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
