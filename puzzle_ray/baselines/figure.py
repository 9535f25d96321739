"""The headline figure: quality against measured decode speed-up, one line per method, so the frontier shows.

Three panels (KL from the parent, top-1 retention, mean in-context accuracy retention), x = the measured decode
speed-up of each child (not the target it was built for). Random architectures: every draw as a faint point,
their mean per target as the line.
"""

from __future__ import annotations

from pathlib import Path

from .report import PUZZLE_METHODS, MethodResult, accuracy_keys, mean_accuracy_retention, mean_result

PANELS = (("kl_from_parent", "KL from parent (nats, lower is better)"),
          ("top1_accuracy_retention", "top-1 accuracy retention"),
          ("icl_retention", "mean in-context accuracy retention"))


def _point(r: MethodResult, keys: list[str]) -> dict[str, float]:
    f = r.figures()
    icl = mean_accuracy_retention(f, keys)
    return f | ({"icl_retention": icl} if icl is not None else {})


def headline_figure(results: list[MethodResult], path: str | Path, title: str = "") -> Path:
    """Write the figure to `path` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = accuracy_keys(results)
    panels = [p for p in PANELS if p[0] != "icl_retention" or keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    methods = list(dict.fromkeys(r.method for r in results))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for method in methods:
        rows = [r for r in results if r.method == method and r.report is not None]
        if not rows:
            continue
        line = rows
        if len({r.target for r in rows}) < len(rows):  # several draws per target: the mean is the line
            groups = [[r for r in rows if r.target == t] for t in sorted({r.target for r in rows})]
            line = [mean_result(g) or g[0] for g in groups]
        label = next(r.label for r in rows) if len(line) == len(rows) else f"{method} (mean of draws)"
        label = label.split(" (draw")[0]
        strong = method in PUZZLE_METHODS
        for ax, (key, _) in zip(axes[0], panels):
            if line is not rows:
                pts = [_point(r, keys) for r in rows]
                ax.scatter([p["decode_speedup"] for p in pts if key in p], [p[key] for p in pts if key in p],
                           color=colours[method], alpha=0.3, s=14)
            pts = sorted((_point(r, keys) for r in line), key=lambda p: p.get("decode_speedup", 0))
            pts = [p for p in pts if key in p and "decode_speedup" in p]
            ax.plot([p["decode_speedup"] for p in pts], [p[key] for p in pts], marker="o",
                    color=colours[method], lw=2.4 if strong else 1.2, label=label, zorder=3 if strong else 2)
    for ax, (key, name) in zip(axes[0], panels):
        ax.set_xlabel("measured decode speed-up (x parent)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
