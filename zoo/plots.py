"""A run's training curves (curves.png, from history.csv): a panel per quantity, train and
validation together, the learning rate, the best epoch marked. Drawn with matplotlib, headless:
a figure and its Agg canvas, never pyplot, so a user's pyplot figures and backend stay as they
were; matplotlib is imported only when drawing."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from zoo.run_dir import write_atomic

PANEL_PIXELS, DPI = (400, 300), 100
SERIES = {"train": ("train", "tab:blue"), "val": ("validation", "tab:orange"),
          "learning_rate": ("schedule", "tab:green")}  # legend label and colour
BEST_COLOUR = "tab:red"
SKIP = {"epoch", "epoch_seconds", "learning_rate"}  # learning_rate has a panel of its own, last


def read_history(history_csv: Path) -> tuple[list[int], dict[str, list[float | None]]]:
    """history.csv's epochs (its `epoch` column as written, else 1..N) and columns, an empty or
    non-finite cell as None (a validation metric computed every few epochs)."""
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    names = list(rows[0]) if rows else []
    epochs = [int(r["epoch"]) for r in rows] if "epoch" in names else list(range(1, len(rows) + 1))
    return epochs, {name: [_number(r.get(name)) for r in rows] for name in names if name != "epoch"}


def _number(cell: str | None) -> float | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def best_epoch(epochs: list[int], values: list[float | None]) -> tuple[int, float] | None:
    """The epoch with the highest value (the first of equal ones, as best.keras keeps it) and the
    value; None if no epoch has one."""
    best = None
    for epoch, value in zip(epochs, values):
        if value is not None and (best is None or value > best[1]):
            best = (epoch, value)
    return best


def panels(columns: dict[str, list[float | None]], main_metric: str | None = None) -> list[tuple[str, list[str]]]:
    """(quantity, its columns) per panel: `x` with `val_x`, a `val_x` without `x` (detection's
    val_mAP) alone; the losses first, then `main_metric`, the other metrics, the learning rate.
    Columns without a value, or -1 throughout (COCO's "no object of this size"), are left out."""
    present = {k for k, v in columns.items() if set(v) - {None} not in (set(), {-1.0})}
    quantities = [k for k in columns if k in present and k not in SKIP and not k.startswith("val_")]
    quantities += [k[4:] for k in columns if k.startswith("val_") and k in present and k[4:] not in quantities]
    quantities.sort(key=lambda q: 0 if q == "loss" else 1 if q.endswith("loss") else 2 if q == main_metric else 3)
    shown = [(q, [k for k in (q, f"val_{q}") if k in present]) for q in quantities]
    return shown + ([("learning rate", ["learning_rate"])] if "learning_rate" in present else [])


def _log_scale(axes, values: list[float]):
    """A log y axis labelled in plain numbers (0.3, not 3e-01): at 1, 2 and 5 times a power of
    ten, or at evenly spaced values where `values` span less than a factor of 3."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    if max(values) < 3 * min(values):
        axes.yaxis.set_major_locator(MaxNLocator(5))
        axes.yaxis.set_minor_locator(NullLocator())
    else:
        axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))


def save_curves(history_csv: Path, path: Path, main_metric: str | None = None):
    """curves.png from a run's history.csv: a panel per quantity (`panels`), every epoch a point,
    losses on a log scale, and the best epoch of `val_<main_metric>` (higher is better; what
    best.keras keeps) marked on every panel and annotated on its own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs, columns = read_history(history_csv)
    shown = panels(columns, main_metric)
    if not shown:
        return
    monitor = main_metric and f"val_{main_metric}"
    best = best_epoch(epochs, columns[monitor]) if any(monitor in keys for _, keys in shown) else None
    across = 2 if len(shown) == 4 else min(len(shown), 3)
    down = -(-len(shown) // across)
    figure = Figure(figsize=(across * PANEL_PIXELS[0] / DPI, down * PANEL_PIXELS[1] / DPI), dpi=DPI,
                    layout="constrained")
    FigureCanvasAgg(figure)
    if best is not None:
        figure.suptitle(f"best {monitor} {best[1]:.4g} at epoch {best[0]} (best.keras)", fontsize="medium")
    marker_size = 4 if len(epochs) <= 50 else 2
    pad = max((max(epochs) - min(epochs)) * 0.04, 0.5)  # every panel spans every epoch, even one
    x_range = (min(epochs) - pad, max(epochs) + pad)
    for i, (quantity, keys) in enumerate(shown):
        axes = figure.add_subplot(down, across, i + 1)
        for key in keys:
            points = [(e, v) for e, v in zip(epochs, columns[key]) if v is not None]
            label, colour = SERIES["val" if key.startswith("val_") else key if key in SERIES else "train"]
            axes.plot(*zip(*points), marker="o", markersize=marker_size, color=colour, label=label)
        values = [v for k in keys for v in columns[k] if v is not None]
        if quantity.endswith("loss") and min(values) > 0:
            _log_scale(axes, values)
        if quantity == "learning rate":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        if best is not None:
            axes.axvline(best[0], color=BEST_COLOUR, linestyle="--", linewidth=1,
                         label=f"best epoch {best[0]}" if monitor in keys else None)
            if monitor in keys:
                axes.annotate(f"{best[1]:.4g}", best, xytext=(0, 8), textcoords="offset points",
                              ha="center", color=BEST_COLOUR)
                axes.plot(*best, marker="*", markersize=12, color=BEST_COLOUR, linestyle="none")
                axes.margins(y=0.12)  # room for the annotation
        axes.set_xlabel("epoch")
        axes.set_ylabel(quantity)
        axes.set_xlim(*x_range)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1, steps=[1, 2, 5, 10]))
        axes.grid(True, which="major", alpha=0.4)
        axes.grid(True, which="minor", alpha=0.15)
        axes.legend(fontsize="small")
    png = io.BytesIO()
    figure.savefig(png, format="png")
    write_atomic(path, png.getvalue())
