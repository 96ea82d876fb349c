"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display needed).

- :func:`gain_curves`: the best transfer configuration's test accuracy minus the best baseline's and the
  best augmentation's, in percentage points, vs training images, with the 95% band (paired over shared splits, else Welch) and the zero line.
- :func:`size_curves`: test accuracy vs training images (log x), one line per configuration (every
  varying field but the tuning fields separates lines), mean with a 95% t-interval band over the repeats,
  n in the legend; the accuracy axis is zoomed to the data, chance drawn only when inside it.
- :func:`depth_heatmaps`: units transferred/frozen x training size, test accuracy and gain over the
  reference (absolute and %), one row of panels per condition (frozen, fine-tuned) — the CIFAR-domains
  study's figures, one figure per source domain.
- :func:`depth_lines`: the same data as line plots, one panel per training size (the Yosinski-style
  thesis's figures).
- :func:`learning_curves`: validation (solid) and training (dashed) error per epoch of the
  configurations chosen on validation at the smallest sizes (the VGG16 study's over-fitting figure).
- :func:`one_shot_curves`: Siamese one-shot accuracy vs N and vs the number of training pairs, with
  Koch's 1-NN baselines and chance 1/N.

Every strategy has one colour in every figure (:data:`STRATEGY_COLOURS`); every size-curve line keeps its
colour, line style and marker in the learning-curve fits (:func:`line_styles`).
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from collections.abc import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, TwoSlopeNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from transferlab.catalog import get_strategy, list_strategies
from transferlab.report.aggregate import ROLES, Cell, DepthSweep, Gain, SizeKey, Task, best_by_validation

# Okabe-Ito colours (distinguishable with colour-vision deficiencies), one per strategy.
STRATEGY_COLOURS = {s.name: s.colour for s in list_strategies()}
OTHER_COLOUR = "#D55E00"
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
CHANCE_STYLE = {"color": "black", "linestyle": ":", "linewidth": 1.0}
# text.parse_math off: figure text carries user strings (dataset paths, class names) in which a '$' is a
# character, never math markup; two of them in a path made mathtext fail and the report unwritable.
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "text.parse_math": False,
}


def _wrap_lines(width: float, *lines: str) -> str:
    """A title whose lines are wrapped to fit a figure ``width`` inches wide (at the suptitle's font size)."""
    return "\n".join(wrapped for line in lines for wrapped in textwrap.wrap(line, int(width * 11)))


def _new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas (text can be measured), laid out by constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def strategy_colour(strategy: str) -> str:
    return STRATEGY_COLOURS.get(strategy, OTHER_COLOUR)


def _n_text(ns: Sequence[int]) -> str:
    low, high = min(ns), max(ns)
    return f"n={low}" if low == high else f"n={low}–{high}"


def _size_axis(ax: Axes, task: Task, sizes: Sequence[SizeKey]) -> None:
    """Log x axis with a tick at each size: training images, and the size as the spec gave it."""
    ax.set_xscale("log")
    positions = [task.n_train[s] for s in sizes]
    ax.xaxis.set_major_locator(FixedLocator(positions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{task.n_train[s]:,}\n{s.label}" for s in sizes])
    low, high = min(positions), max(positions)
    ax.set_xlim(low / 1.5, high * 1.5)
    ax.set_xlabel(
        "training images (log scale), with the size as specified: fraction of the pool or images per class"
    )


def _fit_size_labels(fig: Figure, ax: Axes, task: Task) -> None:
    """When neighbouring two-line size labels would overlap once drawn, write each on one line at 45°."""
    fig.draw_without_rendering()  # runs the layout, so the labels have their final positions
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels() if label.get_text()]
    if any(a.x1 + 2 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False)):
        ax.set_xticklabels(
            [f"{task.n_train[s]:,} ({s.label})" for s in task.sizes],
            rotation=45,
            ha="right",
            rotation_mode="anchor",
        )


def _spread_note(ax: Axes, ns: Sequence[int], single_size: bool) -> None:
    notes = []
    if ns and max(ns) < 2:
        notes.append("n = 1 per point (a single seed): no 95% CI can be drawn")
    elif ns and min(ns) < 2:
        notes.append("points with n = 1 have no CI band")
    if single_size:
        notes.append("a single training size: no trend over size")
    if notes:
        ax.text(
            0.01,
            0.02,
            "\n".join(notes),
            transform=ax.transAxes,
            fontsize=8,
            va="bottom",
            ha="left",
            color="#444444",
            bbox={"facecolor": "white", "edgecolor": "#bbbbbb", "alpha": 0.9},
        )


def _accuracy_limits(values: Sequence[float], chance: float) -> tuple[float, float]:
    low = min([*values, chance])
    high = max([*values, chance])
    margin = max(0.02, 0.08 * (high - low))
    return max(0.0, low - margin), min(1.0, high + margin)


def _data_limits(values: Sequence[float]) -> tuple[float, float]:
    """Accuracy limits zoomed to the data (chance is noted, not forced into view: at the bottom of an axis
    from chance to 1 the differences between arms get a fraction of the plot)."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    margin = max(0.01, 0.08 * (high - low))
    return max(0.0, low - margin), min(1.0, high + margin)


def line_styles(task: Task) -> dict[tuple, tuple[tuple[float, float, float], str, str]]:
    """(colour, line style, marker) of each line of :meth:`Task.lines`: the same in every figure."""
    styles = _LineStyles()
    return {key: styles.next(key[0]) for key in task.lines()}


def size_curves(task: Task) -> Figure:
    """Test accuracy vs training images of each line of :meth:`Task.lines`, with 95% CI bands; the y axis
    is zoomed to the data, with chance drawn only when it falls inside."""
    fig = _new_figure(8.0, 5.2)
    ax = fig.add_subplot()
    styles = line_styles(task)
    lines = task.lines()
    all_values, all_ns = [], []
    for key, cells in lines.items():
        first = next(iter(cells.values()))
        colour, linestyle, marker = styles[key]
        x = np.array([task.n_train[s] for s in cells], dtype=float)
        mean = np.array([c.test.mean for c in cells.values()])
        low = np.array([np.nan if c.test.ci_low is None else c.test.ci_low for c in cells.values()])
        high = np.array([np.nan if c.test.ci_high is None else c.test.ci_high for c in cells.values()])
        ns = [c.test.n for c in cells.values()]
        all_values += [*mean, *np.clip(low[~np.isnan(low)], 0, 1), *np.clip(high[~np.isnan(high)], 0, 1)]
        all_ns += ns
        label = f"{task.describe(first.config, full=False)} ({_n_text(ns)})"
        ax.plot(
            x,
            mean,
            color=colour,
            linestyle=linestyle,
            marker=marker,
            markersize=5,
            linewidth=1.6,
            label=label,
        )
        ax.fill_between(x, np.clip(low, 0, 1), np.clip(high, 0, 1), color=colour, alpha=0.15, linewidth=0)
    low, high = _data_limits(all_values)
    chance_note = ""
    if task.n_classes:
        chance = f"chance (1/{task.n_classes} = {task.chance:.2f})"
        if low <= task.chance <= high:
            ax.axhline(task.chance, **CHANCE_STYLE, label=chance)
        else:
            chance_note = f"; {chance} is {'below' if task.chance < low else 'above'} the axis"
    if not lines:
        ax.text(
            0.5,
            0.5,
            "no finished run has a validation accuracy to choose a configuration on",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    _size_axis(ax, task, task.sizes)
    ax.set_ylim(low, high)
    ax.set_ylabel("test accuracy (fraction correct; axis zoomed to the data)")
    ax.grid(True, which="major", alpha=0.3)
    tuned = task.tuned_fields()
    subtitle = f"mean and 95% CI over repeats (n runs in the legend){chance_note}"
    if tuned:
        subtitle += f"; each point: the best of {', '.join(tuned)} on validation"
    ax.set_title(f"{task.label}: test accuracy vs training size\n" + "\n".join(textwrap.wrap(subtitle, 95)))
    _spread_note(ax, all_ns, len(task.sizes) == 1)
    labels = ax.get_legend_handles_labels()[1]
    if labels:
        ncols = 2 if len(labels) > 3 and max(map(len, labels)) <= 55 else 1
        fig.legend(loc="outside lower center", ncols=ncols, frameon=False)
    _fit_size_labels(fig, ax, task)
    return fig


REFERENCE_COLOURS = {"baseline": "scratch", "augmentation": "augment"}  # a reference takes its strategy's hue


def gain_curves(task: Task) -> Figure | None:
    """The gain of the best transfer configuration (chosen on validation at each size) over the best
    baseline and over the best augmentation configuration, in percentage points of test accuracy, against
    training images; band: 95% interval of the difference (paired over shared splits, else Welch); filled markers where the interval
    excludes 0. None when no size has transfer and a reference."""
    series = {}
    for role in ("baseline", "augmentation"):
        points = []
        for size in task.sizes:
            transfer, reference = task.best(size, role="transfer"), task.best(size, role=role)
            if transfer is not None and reference is not None:
                points.append((size, transfer, reference, Gain.between(transfer.test, reference.test)))
        if points:
            series[role] = points
    if not series:
        return None
    fig = _new_figure(8.0, 4.6)
    ax = fig.add_subplot()
    values = [0.0]
    for i, (role, points) in enumerate(series.items()):
        colour = strategy_colour(REFERENCE_COLOURS[role])
        x = np.array([task.n_train[s] for s, *_ in points], dtype=float) * (1.03 if i else 1 / 1.03)
        gain = np.array([100 * g.absolute for *_, g in points])
        half = np.array([np.nan if g.ci_half is None else 100 * g.ci_half for *_, g in points])
        ns = [t.test.n for _, t, _, _ in points] + [r.test.n for _, _, r, _ in points]
        ax.plot(
            x,
            gain,
            color=colour,
            linewidth=1.8,
            linestyle=LINE_STYLES[i],
            marker=MARKERS[i],
            markersize=6,
            markerfacecolor="white",
            label=f"best transfer − best {role} ({_n_text(ns)} per arm)",
        )
        ax.fill_between(x, gain - half, gain + half, color=colour, alpha=0.18, linewidth=0)
        detectable = ~np.isnan(half) & ((gain - half > 0) | (gain + half < 0))
        ax.scatter(x[detectable], gain[detectable], color=colour, marker=MARKERS[i], s=36, zorder=3)
        values += [*gain, *(gain - half)[~np.isnan(half)], *(gain + half)[~np.isnan(half)]]
    ax.axhline(0.0, color="black", linewidth=0.8, zorder=1, label="0 = no difference")
    _size_axis(ax, task, task.sizes)
    low, high = min(values), max(values)
    margin = max(0.5, 0.08 * (high - low))
    ax.set_ylim(low - margin, high + margin)
    ax.set_ylabel("gain in test accuracy (percentage points)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(
        f"{task.label}: gain of transfer vs training size\n"
        + "\n".join(
            textwrap.wrap(
                "band: 95% CI of the difference (paired over shared splits, else Welch); filled marker: the CI excludes 0 (a detectable difference), "
                "hollow: it covers 0 (no detectable difference)",
                95,
            )
        )
    )
    all_ns = [c.test.n for points in series.values() for _, t, r, _ in points for c in (t, r)]
    _spread_note(ax, all_ns, len(task.sizes) == 1)
    fig.legend(loc="outside lower center", ncols=1, frameon=False)
    _fit_size_labels(fig, ax, task)
    return fig


class _LineStyles:
    """Hue by strategy; shade, line style and marker vary among the lines of one strategy."""

    SHADES = (0.0, -0.45, 0.45, -0.7, 0.7)  # <0 mixes towards black, >0 towards white

    def __init__(self) -> None:
        self._used: dict[str, int] = defaultdict(int)

    def next(self, strategy: str) -> tuple[tuple[float, float, float], str, str]:
        i = self._used[strategy]
        self._used[strategy] += 1
        rgb = np.array(to_rgb(strategy_colour(strategy)))
        shade = self.SHADES[i % len(self.SHADES)]
        mixed = rgb * (1 + shade) if shade < 0 else rgb + (1 - rgb) * shade
        return tuple(mixed), LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)]


# ------------------------------------------------------------------------------------- heatmaps


def _matrix(sweep: DepthSweep, cells: dict, value: Callable[[Cell], float | None]) -> np.ndarray:
    depths, sizes = sweep.depths, sweep.sizes
    out = np.full((len(depths), len(sizes)), np.nan)
    for (depth, size), cell in cells.items():
        v = value(cell)
        if v is not None:
            out[depths.index(depth), sizes.index(size)] = v
    return out


def _annotate(ax: Axes, matrix: np.ndarray, texts: list[list[str]], norm, cmap, fontsize: float) -> None:
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isnan(matrix[i, j]):
                ax.text(j, i, "–", ha="center", va="center", fontsize=fontsize, color="#777777")
                continue
            r, g, b, _ = cmap(norm(matrix[i, j]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(
                j,
                i,
                texts[i][j],
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else "black",
            )


def _heatmap_axes(ax: Axes, sweep: DepthSweep, title: str) -> None:
    ax.set_xticks(range(len(sweep.sizes)))
    ax.set_xticklabels([f"{sweep.task.n_train[s]:,}\n{s.label}" for s in sweep.sizes])
    ax.set_yticks(range(len(sweep.depths)))
    ax.set_yticklabels([str(d) for d in sweep.depths])
    ax.set_xlabel("training images (size)")
    ax.set_ylabel(sweep.depth_label)
    ax.set_title(title)


def _cells_n(sweep: DepthSweep) -> list[int]:
    return [c.test.n for cells in sweep.panels.values() for c in cells.values()]


def _signed(value: float, digits: int) -> str:
    """'+0.05', '-0.01', and '+0.00' (never '-0.00') for a value that rounds to zero."""
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"  # -0.0 + 0.0 is +0.0


def _directions(sweep: DepthSweep) -> str:
    both = any(c.directions > 1 for cells in sweep.panels.values() for c in cells.values())
    return " (A→B and B→A pooled)" if both else ""


def depth_heatmaps(sweep: DepthSweep) -> Figure:
    """Per condition: a heatmap of test accuracy and one of the gain over the reference (+abs, %)."""
    panels = list(sweep.panels.items())
    n_sizes, n_depths = len(sweep.sizes), len(sweep.depths)
    width = min(16.0, 3.0 + 2 * max(3.0, 0.85 * n_sizes))
    height = 1.2 + len(panels) * max(2.6, 0.45 * n_depths + 1.3)
    fig = _new_figure(width, height)
    axes = fig.subplots(len(panels), 2, squeeze=False)
    accuracy = {name: _matrix(sweep, cells, lambda c: c.test.mean) for name, cells in panels}
    gain_abs = {
        name: _matrix(sweep, cells, lambda c: g.absolute if (g := sweep.gain(c)) else None)
        for name, cells in panels
    }
    acc_values = np.concatenate([m.ravel() for m in accuracy.values()])
    acc_norm = Normalize(np.nanmin(acc_values), max(np.nanmax(acc_values), np.nanmin(acc_values) + 1e-6))
    gain_values = np.concatenate([m.ravel() for m in gain_abs.values()])
    limit = float(np.nanmax(np.abs(gain_values))) if not np.all(np.isnan(gain_values)) else 0.0
    gain_norm = TwoSlopeNorm(0.0, -max(limit, 1e-3), max(limit, 1e-3))
    acc_cmap, gain_cmap = matplotlib.colormaps["viridis"], matplotlib.colormaps["RdBu"]
    fontsize = 8 if n_sizes <= 6 else 6.5
    for row, (name, cells) in enumerate(panels):
        ax_acc, ax_gain = axes[row]
        acc = accuracy[name]
        image = ax_acc.imshow(acc, cmap=acc_cmap, norm=acc_norm, aspect="auto")
        _annotate(ax_acc, acc, [[f"{v:.2f}" for v in line] for line in acc], acc_norm, acc_cmap, fontsize)
        _heatmap_axes(ax_acc, sweep, f"{name}: test accuracy")
        fig.colorbar(image, ax=ax_acc, label="test accuracy (fraction)", shrink=0.9)
        gain = gain_abs[name]
        if np.all(np.isnan(gain)):
            ax_gain.set_axis_off()
            ax_gain.text(
                0.5,
                0.5,
                f"{name}:\nno reference runs at these sizes,\nso no gain can be computed",
                ha="center",
                va="center",
                transform=ax_gain.transAxes,
            )
            continue
        ref = _matrix(sweep, cells, lambda c: r.test.mean if (r := sweep.reference.get(c.size)) else None)
        texts = [
            [
                f"{_signed(g, 2)}\n{_signed(100 * g / r, 0)}%" if r else _signed(g, 2)
                for g, r in zip(gl, rl, strict=True)
            ]
            for gl, rl in zip(gain, ref, strict=True)
        ]
        image = ax_gain.imshow(gain, cmap=gain_cmap, norm=gain_norm, aspect="auto")
        _annotate(ax_gain, gain, texts, gain_norm, gain_cmap, fontsize)
        _heatmap_axes(ax_gain, sweep, f"{name}: gain over the reference")
        fig.colorbar(image, ax=ax_gain, label="gain (accuracy points; text: abs., %)", shrink=0.9)
    ns = _cells_n(sweep)
    spread = (
        "n = 1 run per cell (single seed): no CI" if max(ns) < 2 else f"mean over {_n_text(ns)} runs per cell"
    )
    fig.suptitle(
        _wrap_lines(
            width,
            f"{sweep.task.label} — {sweep.title}",
            f"{spread}{_directions(sweep)}; gain reference: {sweep.reference_label}",
        )
    )
    return fig


def depth_lines(sweep: DepthSweep) -> Figure:
    """Test accuracy vs depth, one panel per training size: a line per condition, the reference as a band."""
    sizes = sweep.sizes
    ncols = len(sizes) if len(sizes) <= 3 else 2 if len(sizes) == 4 else 3
    nrows = math.ceil(len(sizes) / ncols)
    width = max(7.5, 3.4 * ncols + 0.6)  # wide enough for the two-line title and the legend
    fig = _new_figure(width, 2.7 * nrows + 1.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    values, ns = [], []
    for index, size in enumerate(sizes):
        ax = axes[index // ncols][index % ncols]
        reference = sweep.reference.get(size)
        if reference is not None:
            ax.axhline(
                reference.test.mean,
                color=strategy_colour("scratch"),
                linewidth=1.2,
                linestyle="--",
                label=f"reference: {sweep.reference_short}",
            )
            if reference.test.ci_half is not None:
                ax.axhspan(
                    max(0.0, reference.test.ci_low),
                    min(1.0, reference.test.ci_high),
                    color="#999999",
                    alpha=0.2,
                    linewidth=0,
                )
            values.append(reference.test.mean)
        for i, (name, cells) in enumerate(sweep.panels.items()):
            points = sorted((d, c) for (d, s), c in cells.items() if s == size)
            if not points:
                continue
            depths = [d for d, _ in points]
            mean = [c.test.mean for _, c in points]
            half = [c.test.ci_half or 0.0 for _, c in points]
            ns += [c.test.n for _, c in points]
            # an accuracy interval ends at 0 and 1
            below = [min(h, m) for m, h in zip(mean, half, strict=True)]
            above = [min(h, 1.0 - m) for m, h in zip(mean, half, strict=True)]
            values += [m + h for m, h in zip(mean, above, strict=True)] + [
                m - h for m, h in zip(mean, below, strict=True)
            ]
            ax.errorbar(
                depths,
                mean,
                yerr=[below, above],
                fmt="o",
                color=strategy_colour(sweep.strategy),
                markerfacecolor="white" if i else None,
                linestyle=LINE_STYLES[i % 2],
                capsize=2.5,
                markersize=4.5,
                linewidth=1.3,
                label=name,
            )
        ax.axhline(sweep.task.chance, **CHANCE_STYLE, label="chance")
        ax.set_title(sweep.task.size_text(size))
        ax.set_xticks(sweep.depths)
        ax.grid(True, alpha=0.3)
        if index // ncols == nrows - 1 or index + ncols >= len(sizes):
            ax.set_xlabel(sweep.depth_label)
        if index % ncols == 0:
            ax.set_ylabel("test accuracy (fraction)")
    for index in range(len(sizes), nrows * ncols):
        axes[index // ncols][index % ncols].set_axis_off()
    axes[0][0].set_ylim(*_accuracy_limits(values, sweep.task.chance))
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if label not in labels:
                    handles.append(h)
                    labels.append(label)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(4 if ncols > 1 else 2, len(labels)),
        frameon=False,
    )
    spread = (
        "n = 1 run per point (single seed): no error bars"
        if ns and max(ns) < 2
        else f"error bars: 95% CI over {_n_text(ns)} runs"
    )
    fig.suptitle(
        _wrap_lines(
            width,
            f"{sweep.task.label} — {sweep.title}: test accuracy by depth",
            f"{spread}{_directions(sweep)}; dashed with band: the reference, {sweep.reference_label}",
        )
    )
    return fig


# ------------------------------------------------------------------------------- learning curves


def _mean_curve(histories: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and the mean error (1 - accuracy) over the runs that reached each epoch."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for history in histories:
        for entry in history:
            if entry.get(key) is not None:
                by_epoch[int(entry["epoch"])].append(1.0 - float(entry[key]))
    epochs = np.array(sorted(by_epoch))
    return epochs, np.array([np.mean(by_epoch[e]) for e in epochs])


def _still_improving(histories: list[list[dict]]) -> int:
    """How many runs (of those with >= 2 validated epochs) had their best validation accuracy at their last
    recorded epoch."""
    count = 0
    for history in histories:
        values = [float(e["val_accuracy"]) for e in history if e.get("val_accuracy") is not None]
        if len(values) >= 2 and int(np.argmax(values)) == len(values) - 1 and values[-1] > values[0]:
            count += 1
    return count


LEARNING_CURVE_SIZES = 2  # the smallest sizes shown
ROLE_MARKERS = {"baseline": "o", "augmentation": "s", "transfer": "^"}


def learning_curves(task: Task, history: Callable[[str], list[dict]]) -> Figure | None:
    """Validation and training error per epoch of the baseline / augmentation / transfer configurations
    chosen on validation at the smallest sizes; None when none of them recorded a history."""
    panels = []
    for size in task.sizes[:LEARNING_CURVE_SIZES]:
        curves = []
        for role in ROLES:
            cell = task.best(size, role=role)
            if cell is None:
                continue
            histories = [h for h in (history(rid) for rid in cell.run_ids) if h]
            if histories:
                curves.append((role, cell, histories))
        if curves:
            panels.append((size, curves))
    if not panels:
        return None
    fig = _new_figure(5.2 * len(panels) + 0.8, 6.0)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (size, curves) in zip(axes, panels, strict=True):
        for role, cell, histories in curves:
            colour = strategy_colour(cell.config.strategy)
            epochs, val_error = _mean_curve(histories, "val_accuracy")
            label = f"{role}: {task.describe(cell.config)} (n={len(histories)})"
            improving = _still_improving(histories)
            if improving:  # validation still getting better when training ended: the budget may be short
                label += f"; {improving} of {len(histories)} runs best at their last epoch (still improving)"
            label = "\n    ".join(textwrap.wrap(label, 60))
            if len(epochs):
                # the role's marker tells apart two roles of one strategy (snt base vs snt transfer)
                ax.plot(
                    epochs,
                    val_error,
                    color=colour,
                    linewidth=1.6,
                    marker=ROLE_MARKERS[role],
                    markersize=4.5,
                    markevery=max(1, len(epochs) // 10),
                    label=label,
                )
                best = int(np.argmin(val_error))
                ax.plot(
                    epochs[best], val_error[best], "*", color=colour, markeredgecolor="black", markersize=11
                )
            epochs, train_error = _mean_curve(histories, "train_accuracy")
            if len(epochs):
                ax.plot(epochs, train_error, color=colour, linewidth=1.0, linestyle="--")
        ax.set_title(task.size_text(size))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)
    axes[0].set_ylabel("error (1 − accuracy)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(
        _wrap_lines(
            5.2 * len(panels) + 0.8,
            f"{task.label}: learning curves at the smallest sizes",
            "solid: validation error, dashed: training error (mean over runs); star: lowest validation error",
        )
    )
    return fig


# ------------------------------------------------------------------------------------ one-shot


def _interval(cell: Cell) -> tuple[float, float]:
    """(below, above) error bar of a cell's one-shot accuracy: the 95% t-interval over repeats, or for a
    single run the Wilson interval over its tasks (both clipped to [0, 1])."""
    stat = cell.test
    if stat.ci_half is not None:
        return min(stat.ci_half, stat.mean), min(stat.ci_half, 1.0 - stat.mean)
    low, high = cell.metrics.get("one_shot_ci_low"), cell.metrics.get("one_shot_ci_high")
    if low is None or high is None:
        return 0.0, 0.0
    return max(0.0, stat.mean - low.mean), max(0.0, high.mean - stat.mean)


def _metric_mean(cell: Cell, name: str) -> float:
    stat = cell.metrics.get(name)
    return np.nan if stat is None else stat.mean


BASELINES = (
    ("nn_pixels_accuracy", "1-NN on raw pixels", "--", "s"),
    ("nn_features_accuracy", "1-NN on backbone features", "-.", "D"),
)


def one_shot_curves(task: Task) -> Figure | None:
    """Siamese one-shot test accuracy against N (left) and against the number of training pairs (right),
    each point the configuration chosen on validation, with error bars (95% t-interval over repeats, or
    the Wilson interval over tasks for a single run), Koch's 1-NN baselines on the same tasks, and chance
    1/N. None when the task has no siamese runs."""
    cells = [c for c in task.cells if get_strategy(c.config.strategy).trains_on == "one-shot"]
    if not cells:
        return None
    fig = _new_figure(11.0, 5.0)
    left, right = fig.subplots(1, 2)
    colour = strategy_colour(cells[0].config.strategy)
    ways = sorted({c.n_classes for c in cells})
    chosen = {n: best_by_validation(c for c in cells if c.n_classes == n) for n in ways}
    chosen = {n: c for n, c in chosen.items() if c is not None}
    values, ns = [], []
    if chosen:
        x = list(chosen)
        mean = [c.test.mean for c in chosen.values()]
        bars = np.array([_interval(c) for c in chosen.values()]).T
        ns += [c.test.n for c in chosen.values()]
        left.errorbar(
            x,
            mean,
            yerr=bars,
            color=colour,
            marker="o",
            capsize=3,
            linewidth=1.6,
            label=f"Siamese ({_n_text([c.test.n for c in chosen.values()])})",
        )
        values += [m + b for m, b in zip(mean, bars[1], strict=True)] + [
            m - b for m, b in zip(mean, bars[0], strict=True)
        ]
        for name, label, style, marker in BASELINES:
            y = [_metric_mean(c, name) for c in chosen.values()]
            left.plot(
                x,
                y,
                color="#555555",
                linestyle=style,
                marker=marker,
                markersize=4,
                linewidth=1.1,
                label=label,
            )
            values += [v for v in y if not np.isnan(v)]
    chance = [1.0 / n for n in ways]
    left.plot(ways, chance, **CHANCE_STYLE, marker=".", label="chance (1/N)")
    left.set_xticks(ways)
    left.set_xlabel("N (candidates per one-shot task)")
    left.set_ylabel("one-shot test accuracy (fraction of tasks)")
    left.set_title("accuracy vs N")
    for n_index, n in enumerate(ways):
        at_n = [c for c in cells if c.n_classes == n]
        by_pairs: dict[int, Cell] = {}
        for pairs in sorted({c.config.get("pairs") for c in at_n if c.config.get("pairs") is not None}):
            cell = best_by_validation(c for c in at_n if c.config.get("pairs") == pairs)
            if cell is not None:
                by_pairs[pairs] = cell
        if not by_pairs:
            continue
        shade = LINE_STYLES[n_index % len(LINE_STYLES)]
        mean = [c.test.mean for c in by_pairs.values()]
        bars = np.array([_interval(c) for c in by_pairs.values()]).T
        ns += [c.test.n for c in by_pairs.values()]
        right.errorbar(
            list(by_pairs),
            mean,
            yerr=bars,
            color=colour,
            linestyle=shade,
            marker=MARKERS[n_index % len(MARKERS)],
            capsize=3,
            linewidth=1.4,
            label=f"Siamese, {n}-way",
        )
        pixels = np.nanmean([_metric_mean(c, "nn_pixels_accuracy") for c in by_pairs.values()])
        if not np.isnan(pixels):
            right.axhline(
                pixels, color="#555555", linestyle=shade, linewidth=0.9, label=f"1-NN pixels, {n}-way"
            )
            values.append(float(pixels))
        right.axhline(1.0 / n, **{**CHANCE_STYLE, "linestyle": ":"}, alpha=0.6)
        values += list(mean)
    right.set_xscale("log")
    pair_counts = sorted({c.config.get("pairs") for c in cells if c.config.get("pairs") is not None})
    right.xaxis.set_major_locator(FixedLocator(pair_counts))
    right.xaxis.set_minor_locator(NullLocator())
    right.set_xticklabels([f"{p:,}" for p in pair_counts])
    right.set_xlabel("training pairs (log scale)")
    right.set_title("accuracy vs training pairs (dotted: chance 1/N)")
    for ax in (left, right):
        ax.set_ylim(*_accuracy_limits(values, min(chance)))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    spread = (
        "n = 1 run per point: error bars are the Wilson 95% interval over its tasks"
        if ns and max(ns) < 2
        else f"error bars: 95% t-interval over {_n_text(ns)} repeats"
    )
    tuned = [f for f in task.varying_within(cells[0].config.strategy) if f not in ("n_way", "pairs")]
    chosen_text = f"; each point: the best of {', '.join(tuned)} on validation pairs" if tuned else ""
    fig.suptitle(_wrap_lines(11.0, f"{task.label}: Siamese one-shot accuracy", f"{spread}{chosen_text}"))
    return fig


def confusion_matrices(panels: Sequence[tuple[str, Cell]]) -> Figure | None:
    """Side-by-side test confusion matrices of the given cells (title, cell), each summed over its
    repeats and normalised per true class (row): the share of a class's test images predicted as each
    class, in percent. None when no cell has one."""
    panels = [(title, cell) for title, cell in panels if cell.confusion is not None]
    if not panels:
        return None
    n = len(panels[0][1].confusion["classes"])
    side = min(max(3.2, 0.42 * n + 1.6), 7.5)
    fig = _new_figure(side * len(panels) + 0.6, side + 0.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    cmap, norm = matplotlib.colormaps["Blues"], Normalize(0, 100)
    fontsize = 7 if n <= 12 else 5 if n <= 25 else 0
    image = None
    for ax, (title, cell) in zip(axes, panels, strict=True):
        counts = np.asarray(cell.confusion["counts"], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(100 * counts, totals, out=np.full_like(counts, np.nan), where=totals > 0)
        image = ax.imshow(share, cmap=cmap, norm=norm)
        if fontsize:
            texts = [[f"{v:.0f}" for v in row] for row in share]
            _annotate(ax, share, texts, norm, cmap, fontsize)
        names = [textwrap.shorten(str(c), 14, placeholder="…") for c in cell.confusion["classes"]]
        ticks = range(len(names)) if n <= 40 else []
        ax.set_xticks(list(ticks), [names[i] for i in ticks], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(list(ticks), [names[i] for i in ticks], fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
        repeats = cell.confusion.get("repeats", cell.test.n)
        ax.set_title(
            "\n".join(textwrap.wrap(title, 48))
            + f"\n{int(counts.sum()):,} test predictions over {repeats} repeats, accuracy {accuracy:.3f}",
            fontsize=8,
        )
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="% of the true class's test images")
    return fig
