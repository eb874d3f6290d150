"""What one evaluation reports besides its metrics: per-class tables (printed before the JSON
line) and, with a folder, the report files: tables as CSV, the confusion matrix, precision-recall
curves, other curves (F1 against the score threshold) and a gallery of the worst predictions.

Every file goes through a temporary file and a rename (never half a file); figures are drawn with
matplotlib's Agg canvas, never pyplot (a user's pyplot figures and backend stay as they were), and
matplotlib is imported only when drawing. A file that cannot be written does not stop the
evaluation: the first such error is kept (`Report.error`), later files are skipped, and
`Report.check()` raises it once the metrics are out.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from zoo.errors import ZooError, cannot_write, make_folder
from zoo.run_dir import write_atomic

LONG_TABLE = 50  # a table with more rows prints only its WORST_ROWS worst
WORST_ROWS = 25
MATRIX_CLASSES = 30  # above this many, confused pairs replace the matrix picture
CONFUSED_PAIRS = 20
PR_CLASSES = 20  # above this many classes, only the PR_SHOWN best and worst by AP are drawn
PR_SHOWN = 10
GALLERY = 25
# The files a report writes: cleared from a reused folder first, so it never mixes two evaluations
# (only these names: anything else in the folder is the user's).
REPORT_FILES = ("per_class.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
                "confused_pairs.csv", "confused_pairs.png", "pr_curves.csv", "pr_curves.png", "f1_curve.csv",
                "f1_curve.png", "worst_predictions.png")
DPI = 100


class Report:
    """What one evaluation reports: per-class tables (always, printed before the JSON line) and,
    with a folder, the report files. `folder=None`: tables only, nothing written."""

    def __init__(self, folder: Path | str | None):
        self.folder = None if folder is None else Path(folder)
        self.error: ZooError | None = None  # the first file that could not be written
        self._tables: list[tuple] = []
        self._files: list[Path] = []
        self._made = False

    def table(self, title: str, columns: list[str], rows: list[list], *, name: str = "per_class",
              totals: list[list] = (), worst_by: str | None = None) -> None:
        """Adds a table: `rows` are [label, number, number, ...] (floats shown with 4 digits,
        ints as ints, None as '-'); with a folder also writes `<name>.csv` (atomically).
        `totals`: rows after the others (averages), always printed, last in the CSV.
        `worst_by`: the column that orders a long table's worst rows (default: the second)."""
        rows, totals = [list(r) for r in rows], [list(r) for r in totals]
        self._tables.append((title, list(columns), rows, totals, worst_by or columns[1], name))
        self.write(f"{name}.csv", csv_text([columns, *rows, *totals]))

    def text(self) -> str:
        """Every table added so far, aligned columns, ready to print (the CLI prints it before
        the JSON line). Long tables (> 50 rows, e.g. 1000 classes) print the 25 worst rows by
        the table's second column (or `worst_by`) and say how many were left out; the CSV holds
        them all."""
        return "\n\n".join(_table_text(*table) for table in self._tables)

    def path(self, name: str) -> Path | None:
        """folder / name, the folder made on first use; None without a folder, or once a file
        could not be written (the caller skips the file)."""
        if self.folder is None or self.error is not None:
            return None
        if not self._made:
            try:
                make_folder(self.folder)
                for stale in REPORT_FILES:  # an earlier report's
                    (self.folder / stale).unlink(missing_ok=True)
            except ZooError as err:
                self.error = err
                return None
            except OSError as err:
                self.error = cannot_write(self.folder, err)
                return None
            self._made = True
        return self.folder / name

    def write(self, name: str, data: str | bytes) -> Path | None:
        """`data` as the file `name` in the folder, atomically; None when nothing was written."""
        path = self.path(name)
        if path is None:
            return None
        try:
            write_atomic(path, data)
        except ZooError as err:  # a full disk: zoo.run_dir.DiskFull, already one line
            self.error = err
            return None
        except OSError as err:
            self.error = cannot_write(path, err)
            return None
        self._files.append(path)
        return path

    def files(self) -> list[Path]:
        """What was written, in order."""
        return list(self._files)

    def check(self):
        """Raise the first error writing the folder (a one-line ZooError), if there was one."""
        if self.error is not None:
            raise self.error


# -- tables ----------------------------------------------------------------------------------
def cell(value) -> str:
    """A table cell: floats with 4 digits, ints as ints, None (or not finite) as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}" if math.isfinite(value) else "-"
    return str(value)


def matrix_csv(matrix, labels, fmt: str) -> str:
    """A square matrix as CSV, a header row and a first column of labels (numbers by NumPy:
    a 1000x1000 matrix in well under a second)."""
    body = io.StringIO()
    np.savetxt(body, matrix, fmt=fmt, delimiter=",")
    return csv_text([["true \\ predicted", *labels]]) + "".join(
        f"{csv_text([[label]])[:-1]},{line}\n" for label, line in zip(labels, body.getvalue().splitlines()))


def csv_text(rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if v is None else v if isinstance(v, str) else cell(v) for v in row])
    return out.getvalue()


def _sort_key(value) -> float:
    """Lowest first; a missing value (no examples of the class) after every number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return math.inf
    return float(value)


def _table_text(title, columns, rows, totals, worst_by, name) -> str:
    note = ""
    if len(rows) > LONG_TABLE:
        at, total = columns.index(worst_by), len(rows)
        rows = sorted(rows, key=lambda row: _sort_key(row[at]))[:WORST_ROWS]
        note = (f"(the {WORST_ROWS} worst of {total} rows by {worst_by}; {total - WORST_ROWS} "
                f"left out, every row in {name}.csv)")
    cells = [[cell(v) for v in row] for row in [columns, *rows, *totals]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    body = [line(row) for row in cells[:1 + len(rows)]]
    if totals:
        body += ["-" * len(body[0])] + [line(row) for row in cells[1 + len(rows):]]
    return "\n".join([title, *([note] if note else []), *body])


# -- figures -----------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(report: Report, figure, name: str) -> Path | None:
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return report.write(f"{name}.png", png.getvalue())


def row_normalized(matrix) -> np.ndarray:
    """Each row divided by its sum; a row with no examples stays 0."""
    matrix = np.asarray(matrix, np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def confused_pairs(matrix, labels, count: int = CONFUSED_PAIRS) -> list[tuple]:
    """The `count` most frequent (true, predicted, count, share of the true class) off the
    diagonal, most frequent first (ties: by true, then predicted class index)."""
    matrix = np.asarray(matrix, np.int64)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.flatnonzero(off)
    flat = flat[np.lexsort((flat, -off.ravel()[flat]))][:count]
    sums = matrix.sum(axis=1)
    return [(labels[i], labels[j], int(off[i, j]), off[i, j] / sums[i])
            for i, j in zip(*np.unravel_index(flat, off.shape))]


def save_confusion_matrix(report, matrix, labels, *, what="examples", name="confusion_matrix"):
    """`matrix[i, j]`: how many `what` of true class i were predicted j (ints; labels may include
    'background' for detection). Writes <name>.csv (counts, header row and column of labels),
    <name>_normalized.csv (each row divided by its sum, rows with no examples left 0) and
    <name>.png (row-normalised colours, counts written in the cells (1234, 56.7k, 1.76M), labelled
    axes 'true' / 'predicted'). Above 30 classes the PNG would be unreadable: instead
    confused_pairs.csv + confused_pairs.png, the 20 most frequent (true, predicted) pairs off the
    diagonal with counts and the share of the true class."""
    if report.folder is None:
        return
    matrix, labels = np.asarray(matrix, np.int64), [str(label) for label in labels]
    normalized = row_normalized(matrix)
    report.write(f"{name}.csv", matrix_csv(matrix, labels, "%d"))
    report.write(f"{name}_normalized.csv", matrix_csv(normalized, labels, "%.4f"))
    if len(labels) > MATRIX_CLASSES:
        _save_confused_pairs(report, matrix, labels, what)
        return
    n = len(labels)
    side = max(4.5, 0.45 * n + 2.5)
    figure = _figure(side + 1.2, side)
    axes = figure.add_subplot()
    shown = axes.imshow(normalized, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(shown, ax=axes, shrink=0.8, label=f"share of the true class's {what}")
    for i, j in zip(*np.nonzero(matrix)):
        axes.text(j, i, count_text(matrix[i, j]), ha="center", va="center",
                  fontsize="small" if n <= 10 else "x-small", color="white" if normalized[i, j] > 0.5 else "black")
    axes.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right"
                    if max(map(len, labels)) > 2 else "center", rotation_mode="anchor")
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"confusion matrix, {int(matrix.sum()):,} {what}\ncolour: share of the true class; "
                   f"cells: counts{' (k thousand, M million)' if matrix.max() >= 10_000 else ''}", fontsize="medium")
    _save_figure(report, figure, name)


def count_text(count: int) -> str:
    """A count short enough for a matrix cell: 1234, 56.7k, 1.76M."""
    if count < 10_000:
        return str(int(count))
    return f"{count / 1e3:.1f}k" if count < 1_000_000 else f"{count / 1e6:.2f}M"


def _save_confused_pairs(report, matrix, labels, what):
    from matplotlib.ticker import MaxNLocator

    pairs = confused_pairs(matrix, labels)
    report.write("confused_pairs.csv", csv_text([["true", "predicted", "count", "share_of_true"]] +
                                                [[t, p, c, float(s)] for t, p, c, s in pairs]))
    figure = _figure(9, max(2.5, 0.32 * len(pairs) + 1.5))
    axes = figure.add_subplot()
    if pairs:
        names = [f"{short_label(t)} → {short_label(p)}" for t, p, _, _ in pairs]
        counts = [c for _, _, c, _ in pairs]
        bars = axes.barh(range(len(pairs)), counts, color="tab:red")
        axes.bar_label(bars, [f"{c:,} ({100 * s:.1f}% of true)" for _, _, c, s in pairs],
                       padding=3, fontsize="small")
        axes.set_yticks(range(len(pairs)), names, fontsize="small")
        axes.invert_yaxis()
        axes.set_xlim(0, max(counts) * 1.35)
        axes.grid(True, axis="x", alpha=0.4)
    else:
        axes.text(0.5, 0.5, "no mistakes", ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    axes.set_xlabel(f"{what} (true class → predicted class)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"the {len(pairs)} most frequent confusions of {len(labels):,} classes\n"
                   f"({int(matrix.sum()):,} {what}; the full matrix in confusion_matrix.csv)",
                   fontsize="medium")
    _save_figure(report, figure, "confused_pairs")


def short_label(label: str, limit: int = 28) -> str:
    """`label` cut to `limit` characters in its middle: names that share a prefix
    (`species_a_long_name_12`) keep the end that tells them apart."""
    if len(label) <= limit:
        return label
    tail = (limit - 1) // 2
    return label[:limit - 1 - tail] + "…" + label[len(label) - tail:]


def _legend(axes, count: int):
    if count > 10:
        axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    elif count:
        axes.legend(fontsize="small")


def _colors(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"].colors
    return [palette[i % len(palette)] for i in range(count)]


def save_pr_curves(report, curves: dict, *, title: str, name="pr_curves"):
    """`curves`: {label: (recall array, precision array)} (both 0..1, same length), one line per
    class (legend with its AP/area when given as `{label: (recall, precision, ap)}`); above 20
    classes only the 10 best and 10 worst by AP are drawn (say so in the title). <name>.png and
    <name>.csv (label, recall, precision rows)."""
    if report.folder is None:
        return
    lines = ["class,recall,precision\n"]
    for label, (recall, precision, *_) in curves.items():
        body = io.StringIO()
        np.savetxt(body, np.column_stack([recall, precision]), fmt="%.4f", delimiter=",")
        lines += [f"{csv_text([[str(label)]])[:-1]},{line}\n" for line in body.getvalue().splitlines()]
    report.write(f"{name}.csv", "".join(lines))
    shown = list(curves.items())
    ap = {label: curve[2] if len(curve) > 2 else None for label, curve in shown}
    if len(shown) > PR_CLASSES and all(v is not None for v in ap.values()):
        ranked = sorted(shown, key=lambda item: -_sort_key(ap[item[0]]))
        shown = ranked[:PR_SHOWN] + ranked[-PR_SHOWN:]
        title += (f"\nthe {PR_SHOWN} best (solid) and {PR_SHOWN} worst (dashed) of {len(curves):,} "
                  f"classes by AP; every class in {name}.csv")
    figure = _figure(9.5 if len(shown) > 10 else 7, 5.5)
    axes = figure.add_subplot()
    for i, (color, (label, (recall, precision, *_))) in enumerate(zip(_colors(len(shown)), shown)):
        text = short_label(str(label)) + (f" (AP {ap[label]:.3f})" if ap[label] is not None else "")
        style = "--" if len(curves) > PR_CLASSES and i >= PR_SHOWN else "-"
        axes.plot(recall, precision, color=color, linewidth=1.5, linestyle=style, label=text,
                  drawstyle="steps-post")
    axes.set_xlim(0, 1.01)
    axes.set_ylim(0, 1.03)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title, fontsize="medium")
    axes.grid(True, alpha=0.4)
    _legend(axes, len(shown))
    _save_figure(report, figure, name)


def save_curves_plot(report, x, ys: dict, *, xlabel: str, ylabel: str, title: str, name: str,
                     mark: dict | None = None):
    """A line plot of several named curves over one x (e.g. F1 against score threshold), `mark`
    {label: (x, y)} points drawn and annotated (the best threshold). <name>.png + <name>.csv."""
    if report.folder is None:
        return
    x = np.asarray(x, np.float64)
    columns = {label: np.asarray(y, np.float64) for label, y in ys.items()}
    report.write(f"{name}.csv", csv_text([[xlabel, *map(str, columns)]] +
                                         [[float(v), *(float(y[i]) for y in columns.values())]
                                          for i, v in enumerate(x)]))
    figure = _figure(9.5 if len(columns) > 10 else 7, 5)
    axes = figure.add_subplot()
    colors = dict(zip(columns, _colors(len(columns))))
    for label, y in columns.items():
        axes.plot(x, y, color=colors[label], linewidth=1.5, label=short_label(str(label)))
    for label, (mx, my) in (mark or {}).items():
        color = colors.get(label, "black")
        axes.plot([mx], [my], marker="o", markersize=7, color=color, linestyle="none")
        axes.annotate(f"{short_label(str(label))}: {my:.3f} at {mx:.3g}", (mx, my), xytext=(6, 6),
                      textcoords="offset points", fontsize="small", color=color)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize="medium")
    axes.grid(True, alpha=0.4)
    axes.margins(y=0.1)
    _legend(axes, len(columns))
    _save_figure(report, figure, name)


def save_gallery(report, images: list, captions: list[str], *, title: str, name="worst_predictions",
                 legend: dict | None = None):
    """A grid of uint8 (H, W, 3) pictures (any sizes; shown at a common size, small images
    upscaled with nearest neighbour so an 8x8 digit is visible) with a caption under each
    ('true 3 / predicted 8 (0.97)'), at most 25. <name>.png. `legend`: {label: RGB 0..255}
    swatches under the grid (the class colours of overlays)."""
    if report.folder is None:
        return
    images, captions = list(images)[:GALLERY], list(captions)[:GALLERY]
    aspect = max((image.shape[1] / image.shape[0] for image in images), default=1.0)
    lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    across = max(1, min(5, len(images), round(math.sqrt(1.5 * len(images) / aspect))))  # a landscape grid
    down = max(1, -(-len(images) // across))
    cell_width = min(13.0 / across, 2.4 * aspect + 0.3)
    cell_height = (cell_width - 0.3) / aspect
    figure = _figure(max(6.5, across * cell_width + 0.2),
                     down * (cell_height + 0.2 + 0.18 * lines) + 0.6 + 0.3 * -(-len(legend or ()) // 6))
    figure.suptitle(title, fontsize="medium")
    if not images:
        figure.text(0.5, 0.5, "nothing to show", ha="center", va="center")
    for i, (image, caption) in enumerate(zip(images, captions)):
        axes = figure.add_subplot(down, across, i + 1)
        axes.imshow(np.asarray(image, np.uint8), interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel(caption, fontsize="small")
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.asarray(color) / 255, edgecolor="black", label=short_label(str(label)))
                   for label, color in legend.items()]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                      fontsize="small")
    _save_figure(report, figure, name)
