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
    names = ["loss"] + sorted(
        k for k in logs if not k.startswith("val_") and k not in ("loss", "learning_rate")
    )
    fig = new_figure(figsize=(5 * len(names), 3.6))
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(len(logs[name]))  # 0-based, as in CSVLogger and the reports
        ax.plot(epochs, logs[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path, title)


_COLORS = {"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}


def _steps_to_epoch_x(step, steps_per_epoch):
    return step / steps_per_epoch if steps_per_epoch else step


def plot_report(report, path, title=None):
    """Saves a report's curves as a PNG with its findings annotated.

    Left panel: the per-step loss (raw and smoothed, epoch boundaries dashed)
    when known; right panel: the per-epoch losses (train and validation).
    Each finding is marked where its evidence points (the NaN step, the
    minimum before a divergence, the plateau of a slow start, the best
    validation epoch) and listed, with its advice, under the plots. A
    healer's rollbacks (`report.interventions`) are dash-dotted green lines.

    Args:
        report: a `kerastoolkit.diagnostics.Report`.
        path: where to write the PNG.
        title: figure title. Defaults to `None`.

    Returns:
        `path`.
    """
    import numpy as np

    has_steps = report.steps is not None and len(report.steps) > 0
    has_epochs = bool(report.epochs) and "loss" in report.epochs
    panels = int(has_steps) + int(has_epochs) or 1
    n_lines = max(1, len(report.findings)) + len(report.notes)
    fig = new_figure(figsize=(6 * panels, 4.2 + 0.42 * n_lines))
    grid = fig.add_gridspec(2, panels, height_ratios=[4.2, 0.42 * n_lines])
    axes = [fig.add_subplot(grid[0, i]) for i in range(panels)]
    step_ax = axes[0] if has_steps else None
    epoch_ax = axes[-1] if has_epochs else None
    spe = report.steps_per_epoch

    if step_ax is not None:
        s = report.steps
        x = np.arange(len(s))
        finite = np.isfinite(s)
        step_ax.plot(x[finite], s[finite], lw=0.6, alpha=0.45, color="tab:gray",
                     label="batch loss")
        w = max(1, len(s) // 50)
        if w > 1 and finite.all():
            smooth = np.convolve(s, np.ones(w) / w, mode="valid")
            step_ax.plot(x[w - 1:], smooth, lw=1.6, color="tab:blue",
                         label=f"mean of {w} steps")
        if spe:
            for b in range(spe, len(s), spe):
                step_ax.axvline(b, color="k", lw=0.5, ls=":", alpha=0.4)
        if finite.any() and s[finite].min() > 0 and s[finite].max() / s[finite].min() > 50:
            step_ax.set_yscale("log")
        step_ax.set_xlabel("step")
        step_ax.set_ylabel("loss")
        step_ax.set_title("per-step loss")
        step_ax.grid(alpha=0.3)
    if epoch_ax is not None:
        ep = report.epochs
        n = len(ep["loss"])
        xe = np.arange(n)  # 0-based, as in epochs.csv and the findings
        epoch_ax.plot(xe, ep["loss"], marker="o", ms=3, label="train loss")
        if "val_loss" in ep:
            epoch_ax.plot(xe, ep["val_loss"], marker="o", ms=3, label="validation loss")
        epoch_ax.set_xlabel("epoch")
        _integer_ticks(epoch_ax)
        epoch_ax.set_ylabel("loss")
        epoch_ax.set_title("per-epoch loss")
        epoch_ax.grid(alpha=0.3)

    for f in report.findings:
        color = _COLORS[f.severity]
        ev = f.evidence
        unit = ev.get("unit")
        ax = step_ax if (unit == "step" or ("step" in ev and f.code == "nan")) else epoch_ax
        if ax is None:
            ax = step_ax or epoch_ax
        offset = 0  # epochs are 0-based in the plot as in the evidence
        if f.code == "nan":
            pos = ev.get("step") if ax is step_ax else ev.get("epoch")
            if pos is not None:
                ax.axvline(pos + offset, color=color, lw=2)
                label = f"nan at {'step' if ax is step_ax else 'epoch'} {pos + offset}"
                if ev.get("layer"):
                    label += f" ({ev.get('where')} of {ev['layer']})"
                ax.annotate(label, (pos + offset, 0.9), xycoords=("data", "axes fraction"),
                            color=color, fontsize=8, ha="right")
        elif f.code == "diverging" and "minimum_at" in ev:
            ax.axvline(ev["minimum_at"] + offset, color=color, ls="--")
            ax.annotate("diverging", (ev["minimum_at"] + offset, 0.9),
                        xycoords=("data", "axes fraction"), color=color, fontsize=8)
        elif f.code == "slow_start" and "plateau_until" in ev:
            ax.axvspan(ev.get("plateau_from", 0) + offset, ev["plateau_until"] + offset,
                       color=color, alpha=0.15)
            ax.annotate("slow start (plateau)", (ev.get("plateau_from", 0) + offset, 0.05),
                        xycoords=("data", "axes fraction"),
                        color=color, fontsize=8)
        elif f.code == "overfitting_definite" and epoch_ax is not None:
            epoch_ax.axvline(ev["best_epoch"], color=color, ls="--")
            epoch_ax.annotate("best validation", (ev["best_epoch"], 0.9),
                              xycoords=("data", "axes fraction"), color=color, fontsize=8)
        elif f.code == "overfitting_possible" and epoch_ax is not None:
            n = len(report.epochs["loss"])
            epoch_ax.axvspan(n - ev["last_epochs"], n - 1, color=color, alpha=0.12)
        elif f.code == "not_converged" and epoch_ax is not None:
            n = len(report.epochs["loss"])
            epoch_ax.axvspan(n - ev["last_epochs"], n - 1, color=color, alpha=0.12)
        elif f.code == "chance_plateau" and "from" in ev:
            ax.axvline(ev["from"], color=color, ls="--")
            ax.annotate("jump to a flat loss", (ev["from"], 0.9),
                        xycoords=("data", "axes fraction"), color=color, fontsize=8)
        elif f.code in ("unshuffled", "repeated_order") and step_ax is not None:
            step_ax.annotate("period = 1 epoch", (0.02, 0.92), xycoords="axes fraction",
                             color=color, fontsize=8)
    for i, entry in enumerate(getattr(report, "interventions", None) or []):
        if step_ax is None or "curve_step" not in entry:
            break
        step_ax.axvline(entry["curve_step"], color="tab:green", lw=1, ls="-.",
                        label="rollback (SelfHealing)" if i == 0 else None)
        step_ax.annotate(entry["seen"]["kind"].replace("non_finite_", "non-finite "),
                         (entry["curve_step"], 0.8 - 0.06 * (i % 4)),
                         xycoords=("data", "axes fraction"), color="tab:green", fontsize=7)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right")

    text_ax = fig.add_subplot(grid[1, :])
    text_ax.axis("off")
    lines = []
    if not report.findings:
        lines.append(("healthy: no findings", "tab:green"))
    for f in report.findings:
        msg = f"{f.code}: {f.message}  Try: {f.advice}"
        lines.append((msg if len(msg) < 160 * panels else msg[: 160 * panels - 3] + "...",
                      _COLORS[f.severity]))
    lines += [(f"note: {n}", "tab:gray") for n in report.notes]
    for i, (line, color) in enumerate(lines):
        text_ax.text(0, 1 - (i + 0.5) / len(lines), line, color=color, fontsize=8,
                     va="center", ha="left", transform=text_ax.transAxes, wrap=True)
    return save_figure(fig, path, title)


def new_figure(figsize):
    """A `matplotlib.figure.Figure` on its own Agg canvas.

    Drawing never goes through `pyplot`: the user's backend (a notebook's
    inline plots, an interactive window) is left as it was, and no figure is
    registered with `pyplot`'s figure manager.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, path, title=None):
    """Titles, lays out and writes a matplotlib figure as PNG, then closes it.

    The toolkit's plots (curves, LR range test, optimizer bake-off) all end
    here, so each creates missing parent folders the same way. A figure
    from `new_figure` never touches `pyplot`; one made with `pyplot` is
    closed there.

    Returns:
        `path`.
    """
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
