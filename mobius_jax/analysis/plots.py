"""Figures of the analysis, each saved as a PNG.

They use matplotlib's `Figure` directly, not pyplot: no display or backend is needed, and the
caller's pyplot state (a notebook's inline figures) is left alone.

  plot_type_shares: the share of each map type per layer and per head;
  plot_map_images:  a grid of lines and circles and its image under chosen maps;
  plot_attention:   attention heat-maps of one sentence, a panel per layer and head.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

from mobius_jax.ops import MOBIUS_TYPES, MapCoefficients, mobius_transform

TYPE_COLORS = dict(
  zip(
    MOBIUS_TYPES,
    ("#bbbbbb", "#4477aa", "#228833", "#ee6677", "#aa3377", "#222222", "#ccbb44"),
    strict=True,
  )
)


def _save(fig, path) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  return path


def plot_type_shares(report: dict, path) -> pathlib.Path:
  """Stacked bars of the map types: one bar per Möbius layer, then one per (layer, head).

  Args:
    report: from `mobius_jax.analysis.map_report`.
    path: the PNG to write.
  """
  layers = report["layers"]
  if not layers:
    raise ValueError("The report has no Möbius layers: there are no maps to plot.")
  groups = [
    ([f"layer {r['layer']}" for r in layers], [r["shares"] for r in layers], "per layer"),
    (
      [f"L{r['layer']} H{h['head']}" for r in layers for h in r["heads"]],
      [h["shares"] for r in layers for h in r["heads"]],
      "per head",
    ),
  ]
  widths = [len(groups[0][0]) + 1, len(groups[1][0]) + 1]
  fig = _figure(figsize=(3 + 0.35 * sum(widths), 3.6))
  axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": widths}, sharey=True)
  for ax, (labels, shares, title) in zip(axes, groups, strict=True):
    bottom = np.zeros(len(labels))
    for name in MOBIUS_TYPES:
      values = np.array([s[name] for s in shares])
      if values.any():
        ax.bar(labels, values, bottom=bottom, color=TYPE_COLORS[name], label=name, width=0.8)
      bottom += values
    ax.set_title(f"Möbius map types {title}")
    ax.tick_params(axis="x", labelrotation=90)
  axes[0].set_ylabel("share of maps")
  axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
  return _save(fig, path)


def _grid_curves(extent: float = 2.0, lines: int = 9, samples: int = 400) -> list[np.ndarray]:
  """Complex polylines: horizontal and vertical lines and circles about 0 (the unit circle
  among them)."""
  t = np.linspace(-extent, extent, samples)
  offsets = np.linspace(-extent, extent, lines)
  curves = [t + 1j * y for y in offsets] + [x + 1j * t for x in offsets]
  angles = np.linspace(0, 2 * np.pi, samples)
  curves += [r * np.exp(1j * angles) for r in (0.5, 1.0, 1.5)]
  return curves


def plot_map_images(
  maps: Sequence[tuple[str, MapCoefficients]], path, *, extent: float = 2.0, view: float = 4.0
) -> pathlib.Path:
  """The grid of `_grid_curves` and its image under each map, one panel each.

  Args:
    maps: (title, scalar map (a, b, c, d)) pairs, e.g. from
      `mobius_jax.analysis.representative_maps`.
    path: the PNG to write.
    extent: half-width of the drawn grid; view: half-width of each panel's window. Lines through
      the pole go off to infinity; the window clips them.
  """
  curves = _grid_curves(extent)
  panels = [("the grid: lines and circles", None), *maps]
  fig = _figure(figsize=(3.2 * len(panels), 3.4))
  axes = fig.subplots(1, len(panels), squeeze=False)
  for ax, (title, m) in zip(axes[0], panels, strict=True):
    for i, z in enumerate(curves):
      w = z if m is None else np.asarray(mobius_transform(z, *(np.complex64(x) for x in m)))
      w = np.where(np.abs(w) < 1e3, w, np.nan)  # break a curve where it passes the pole
      color = "#4477aa" if i < len(curves) - 3 else "#ee6677"
      ax.plot(w.real, w.imag, color=color, linewidth=0.8)
    ax.set_xlim(-view, view)
    ax.set_ylim(-view, view)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
  return _save(fig, path)


def plot_attention(
  weights: Sequence[np.ndarray],
  tokens: Sequence[str],
  path,
  *,
  kinds: Sequence[Sequence[str]] | None = None,
) -> pathlib.Path:
  """Heat-maps of one sentence's attention: a row per layer, a column per head, each panel's
  colours running from 0 to its largest weight.

  Args:
    weights: one `[N, T, T]` array per layer (query × key) for the sentence's T real tokens.
    tokens: the T tokens, for the axes.
    path: the PNG to write.
    kinds: optional `[layers][heads]` head kinds (`mobius_jax.analysis.head_kinds`), shown in
      the panel titles.
  """
  rows, cols = len(weights), weights[0].shape[0]
  size = 1.2 + 0.12 * len(tokens)
  fig = _figure(figsize=(size * cols, size * rows), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False)
  ticks = np.arange(len(tokens))
  for layer, w in enumerate(weights):
    for head in range(cols):
      ax = axes[layer, head]
      # Each panel scaled to its own largest weight: near-uniform heads would be blank otherwise.
      ax.imshow(w[head], cmap="viridis", vmin=0, vmax=w[head].max())
      kind = f" ({kinds[layer][head]})" if kinds else ""
      ax.set_title(f"layer {layer}, head {head}{kind}", fontsize=8)
      ax.set_xticks(ticks, tokens, rotation=90, fontsize=6)
      ax.set_yticks(ticks, tokens, fontsize=6)
  return _save(fig, path)


def _figure(**kwargs):
  """A matplotlib `Figure` (matplotlib comes with the `analysis` extra)."""
  try:
    from matplotlib.figure import Figure
  except ImportError as error:
    raise ImportError(
      "The analysis figures need matplotlib: pip install 'mobius-jax[analysis]'."
    ) from error
  return Figure(**kwargs)
