"""Figures 1, 2, 4 and 5 as PNG files (matplotlib, Agg backend).

Each function takes plain data (the JSON of ``sstl analyse``, metric values, per-class tables)
and an output path, draws with a fixed size so the pixel dimensions are known, and returns the
path. A missing input never crashes a figure: its axes say "not run" and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

DPI = 100
SIZES = {"figure1": (8.0, 5.0), "figure2": (13.0, 5.0), "figure4": (8.0, 5.0)}
FIG5_WIDTH = 10.0
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def figure5_height(n_classes: int) -> float:
    """Figure 5 grows with the class count so every class name stays readable (inches)."""
    return max(4.0, 0.22 * n_classes + 1.5)


def _not_run(ax: plt.Axes, why: str) -> None:
    ax.text(0.5, 0.5, f"not run\n{why}", ha="center", va="center", fontsize=12, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: plt.Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)  # no bbox_inches="tight": keep the declared pixel size
    plt.close(fig)
    return out


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """JSON lists with None (empty bins) -> float array with NaN, which matplotlib skips."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def _n_videos(results: Mapping[str, dict | None]) -> str:
    ns = sorted({int(r["num_videos"]) for r in results.values() if r})
    return "N=" + "/".join(map(str, ns)) + " videos" if ns else "N=0"


def figure1(results: Mapping[str, dict | None], out: Path, dataset: str) -> Path:
    """Mean cosine similarity of two temporally augmented views vs augmentation strength.

    ``results``: model label -> ``similarity.json`` content (None when not run). Error bars are
    the 95% interval of the mean over videos (1.96 standard errors): what a comparison of the
    curves needs; a standard deviation also ran past the cosine's bound of 1.
    """
    fig, ax = plt.subplots(figsize=SIZES["figure1"])
    done = {k: r for k, r in results.items() if r}
    for i, (label, r) in enumerate(done.items()):
        f1 = r["figure1"]
        ax.errorbar(
            f1["strengths"],
            f1["mean"],
            yerr=[1.96 * e if e is not None else 0.0 for e in f1["sem"]],  # None: n < 2
            marker="o",
            capsize=4,
            color=COLORS[i % len(COLORS)],
            label=label,
        )
    missing = [k for k, r in results.items() if not r]
    if not done:
        _not_run(ax, "no similarity.json for: " + ", ".join(missing))
    else:
        ax.set_xlabel("temporal augmentation strength e (buffer frames, window 16+e)")
        ax.set_ylabel("cosine similarity of the two views")
        ax.legend(title="not run: " + ", ".join(missing) if missing else None)
        ax.grid(alpha=0.3)
    ax.set_title(
        f"Figure 1: view similarity vs temporal augmentation ({dataset}, {_n_videos(results)})"
    )
    return _save(fig, out)


def figure2(results: Mapping[str, dict | None], out: Path, dataset: str) -> Path:
    """(a) intra- vs inter-video similarity histograms; (b) similarity vs temporal distance.

    The band in (b) is the 95% confidence interval of the bin mean (mean ± 1.96 sem).
    """
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=SIZES["figure2"])
    done = {k: r for k, r in results.items() if r}
    # shared bins over the range the samples cover (cosines of pooled ReLU features sit in
    # [0, 1], trained ones often in [0.5, 1]): a fixed [-1, 1] axis leaves the peaks 2 bins wide
    samples = [
        v
        for r in done.values()
        for kind in ("intra", "inter")
        for v in r["figure2"][kind]["samples"]
    ]
    low = max(-1.0, np.floor(min(samples, default=-1.0) * 20) / 20)
    bins = np.linspace(low, 1.0, 41)
    for i, (label, r) in enumerate(done.items()):
        color, f2 = COLORS[i % len(COLORS)], r["figure2"]
        for kind, style in (("intra", "-"), ("inter", "--")):
            ax_a.hist(
                f2[kind]["samples"],
                bins=bins,
                density=True,
                histtype="step",
                linestyle=style,
                color=color,
                label=f"{label}: {kind}-video",
            )
        d = f2["distance"]
        # plot each bin at its mean distance (clip spacing makes distances discrete)
        x = _floats(d.get("distance") or d["centers"])
        x = np.where(np.isnan(x), _floats(d["centers"]), x)
        mean, low, high = _floats(d["mean"]), _floats(d["low"]), _floats(d["high"])
        ax_b.plot(x, mean, marker="o", color=color, label=label)
        ax_b.fill_between(x, low, high, color=color, alpha=0.25)
    if not done:
        _not_run(ax_a, "no similarity.json")
        _not_run(ax_b, "no similarity.json")
    else:
        ax_a.set_xlabel("cosine similarity between two clips")
        ax_a.set_ylabel("density")
        ax_a.legend(fontsize=8)
        ax_b.set_xlabel("relative temporal distance |t_i - t_j| / video length")
        ax_b.set_ylabel("cosine similarity (same video)")
        ax_b.legend(fontsize=8)
        ax_b.grid(alpha=0.3)
    ax_a.set_title(f"(a) intra- vs inter-video similarity ({dataset}, {_n_videos(results)})")
    ax_b.set_title("(b) similarity vs temporal distance, 95% CI band")
    fig.suptitle("Figure 2")
    fig.tight_layout()
    return _save(fig, out)


def figure4(bars: Sequence[Mapping[str, Any]], out: Path, dataset: str) -> Path:
    """Fine-tune top-1 grouped by pretraining batch size, one bar per projection dimension.

    ``bars``: ``{"batch": int, "dim": int, "top1": float | None, "reason": str | None}`` each,
    with an optional ``"ci95"`` (half-width over seeds, drawn as an error bar); a bar without
    top-1 is drawn hatched in its dimension's colour up to the top of the axis and labelled
    "not run".
    """
    fig, ax = plt.subplots(figsize=SIZES["figure4"])
    batches = sorted({int(b["batch"]) for b in bars})
    dims = sorted({int(b["dim"]) for b in bars})
    highs = [b["top1"] + (b.get("ci95") or 0.0) for b in bars if b.get("top1") is not None]
    top = max(highs) * 1.25 if highs else 100.0  # headroom for the labels and the legend row
    width = 0.8 / max(len(dims), 1)
    for b in bars:
        i, j = batches.index(int(b["batch"])), dims.index(int(b["dim"]))
        x = i + (j - (len(dims) - 1) / 2) * width
        color = COLORS[j % len(COLORS)]
        if b.get("top1") is None:
            ax.bar(x, top, width, fill=False, hatch="//", edgecolor=color)  # colour = dim
            ax.text(x, top / 2, "not run", rotation=90, ha="center", va="center", fontsize=9)
        else:
            ci = b.get("ci95")
            ax.bar(x, b["top1"], width, color=color, yerr=ci, capsize=3 if ci else 0)
            label = f"{b['top1']:.1f}" + (f"\n±{ci:.1f}" if ci else "")
            ax.text(x, b["top1"] + (ci or 0.0), label, ha="center", va="bottom", fontsize=7)
    if not bars:
        _not_run(ax, "no experiments in the report spec's figure4")
    else:
        handles = [
            Patch(color=COLORS[j % len(COLORS)], label=f"projection dim {d}")
            for j, d in enumerate(dims)
        ]
        handles.append(Patch(fill=False, hatch="//", edgecolor="grey", label="not run"))
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_ylim(0, top)
        ax.set_ylabel("fine-tune top-1 (%)")
        ax.legend(handles=handles, fontsize=8, loc="upper center", ncol=len(handles))
    ran = len(highs)
    ci_note = ", error bars: 95% interval over seeds" if any(b.get("ci95") for b in bars) else ""
    ax.set_title(
        f"Figure 4: batch size x projection dim ({dataset}, {ran}/{len(bars)} runs{ci_note})",
        fontsize=10,
    )
    return _save(fig, out)


def per_class_gain(with_temp: pd.DataFrame, without_temp: pd.DataFrame) -> pd.DataFrame:
    """Per-class accuracy (%) with minus without temporal augmentation, sorted by gain.

    Inputs are ``per_class.csv`` tables as ``sstl evaluate`` writes them (label, class_name,
    videos, correct, accuracy; the older names class_index / total are accepted too); accuracy is
    recomputed as 100 * correct / videos so its unit never matters. Classes without test videos
    have no accuracy and are left out (they would draw as a gain of 0).
    """
    names = {"class_index": "label", "total": "videos"}
    a = with_temp.rename(columns=names).set_index("label")
    b = without_temp.rename(columns=names).set_index("label")
    if set(a.index) != set(b.index):
        raise ValueError(
            f"per-class tables cover different classes: {sorted(set(a.index) ^ set(b.index))}"
        )
    acc_a = 100.0 * a["correct"] / a["videos"].clip(lower=1)
    acc_b = 100.0 * b["correct"].reindex(a.index) / b["videos"].reindex(a.index).clip(lower=1)
    gain = pd.DataFrame(
        {"class_name": a["class_name"], "with": acc_a, "without": acc_b, "gain": acc_a - acc_b}
    )
    gain = gain[(a["videos"] > 0) & (b["videos"].reindex(a.index) > 0)]
    return gain.sort_values(["gain", "class_name"], ascending=[False, True]).reset_index()


def figure5(
    with_temp: pd.DataFrame | None,
    without_temp: pd.DataFrame | None,
    out: Path,
    dataset: str,
    why_missing: str = "",
) -> Path:
    """Sorted per-class accuracy gain from temporal augmentation (horizontal bars)."""
    if with_temp is None or without_temp is None:
        fig, ax = plt.subplots(figsize=(FIG5_WIDTH, figure5_height(0)))
        _not_run(ax, why_missing or "per_class.csv missing")
        ax.set_title(f"Figure 5: per-class gain from temporal augmentation ({dataset})")
        return _save(fig, out)
    gain = per_class_gain(with_temp, without_temp)
    fig, ax = plt.subplots(figsize=(FIG5_WIDTH, figure5_height(len(gain))))
    colors = ["tab:green" if g >= 0 else "tab:red" for g in gain["gain"]]
    ax.barh(range(len(gain)), gain["gain"], color=colors)
    ax.set_yticks(range(len(gain)), gain["class_name"], fontsize=8)
    ax.invert_yaxis()  # largest gain on top
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("accuracy with - without temporal augmentation (percentage points)")
    videos = int(with_temp.rename(columns={"total": "videos"})["videos"].sum())
    ax.set_title(
        f"Figure 5: per-class gain from temporal augmentation ({dataset}, "
        f"{len(gain)} classes, N={videos} test videos)"
    )
    fig.tight_layout()
    return _save(fig, out)
