"""The learned Möbius maps of a model: extraction, types, determinants and fixed points.

A Möbius layer's `query_mobius/coefficients` `[4, 2, M·C]` hold one map per query dimension of
its M Möbius heads of C complex dims each; head h owns dimensions h·C … (h + 1)·C − 1.
"""

from __future__ import annotations

import flax.linen as nn
import numpy as np

from mobius_jax.models.config import ModelConfig
from mobius_jax.ops import MOBIUS_TYPES, MapCoefficients, classify, determinant, fixed_points


def encoder_params(params: dict) -> dict:
  """The encoder's parameters out of a `Transformer`'s, a `MaskedLM`'s or a classifier's."""
  params = nn.meta.unbox(params)
  if "backbone" in params:
    params = params["backbone"]
  if "encoder" not in params:
    raise ValueError(
      "These parameters hold no encoder: pass a Transformer's, MaskedLM's or "
      f"SequenceClassifier's parameters (top-level keys: {sorted(params)})."
    )
  return params["encoder"]


def mobius_maps(params: dict, config: ModelConfig) -> dict[int, MapCoefficients]:
  """Every learned Möbius map of a model, by layer.

  Args:
    params: a `Transformer`'s, `MaskedLM`'s or `SequenceClassifier`'s parameters.
    config: the model's config (for the head layout).

  Returns:
    {layer index: (a, b, c, d)}, complex128 numpy arrays `[M, C]` (M Möbius heads, C dims per
    head), for each Möbius layer with at least one Möbius head.
  """
  encoder = encoder_params(params)
  maps = {}
  for i, kind in enumerate(config.layer_kinds):
    if kind != "M" or not config.mobius_heads:
      continue
    coefficients = np.asarray(
      encoder[f"layer_{i}"]["attention"]["query_mobius"]["coefficients"], np.float64
    )
    # Not re + 1j * im: 1j * inf would put a NaN into the real part.
    complex_coefficients = coefficients[:, 0].astype(np.complex128)  # [4, M·C]
    complex_coefficients.imag = coefficients[:, 1]
    shape = (config.mobius_heads, config.head_dim)
    maps[i] = tuple(c.reshape(shape) for c in complex_coefficients)
  return maps


def map_report(
  params: dict, config: ModelConfig, *, tol: float = 1e-3, det_tol: float = 0.1
) -> dict:
  """Types, determinants and fixed points of every learned Möbius map, as JSON-ready numbers.

  Args:
    params, config: as in `mobius_maps`.
    tol: `classify`'s tolerance. Learned maps are never exactly parabolic or elliptic in
      floating point; `tol` says how close counts (the default treats σ within 1e-3 of real as
      real). Maps within about √tol of the identity count as parabolic, since σ − 4 is of
      second order in the distance from the identity.
    det_tol: a map's |ad − bc| counts as "near 1" when it lies within `det_tol` of 1. The
      coefficients start at the identity (det 1); maps that keep |det| ≈ 1 act locally, maps that
      drift far from it rescale the plane globally.

  Returns:
    {"types": MOBIUS_TYPES, "tol", "det_tol", "layers": [per layer: "layer", "counts" and
    "shares" of each type, "heads" (per head: "head", "counts", "shares"), "determinant"
    (mean, median, min, max of the finite |det| and their share near 1), "fixed_points" (share
    finite, share in the closed unit disk, median modulus of the finite ones)], "total": counts
    and shares over all layers}.
  """
  layers, total = [], np.zeros(len(MOBIUS_TYPES), np.int64)
  for layer, m in mobius_maps(params, config).items():
    codes = np.asarray(classify(m, tol=tol))  # [M, C]
    head_counts = [np.bincount(row, minlength=len(MOBIUS_TYPES)) for row in codes]
    counts = np.sum(head_counts, axis=0)
    total += counts
    det = np.abs(np.asarray(determinant(m)))
    # A non-finite map has no determinant: summarise the others (NaN if there are none).
    det = det[np.isfinite(det)] if np.isfinite(det).any() else np.array([np.nan])
    points = np.concatenate([np.asarray(p).ravel() for p in fixed_points(m)])
    finite = points[np.isfinite(points)]
    layers.append(
      {
        "layer": layer,
        **_counts_and_shares(counts),
        "heads": [{"head": h, **_counts_and_shares(c)} for h, c in enumerate(head_counts)],
        "determinant": {
          "abs_mean": float(det.mean()),
          "abs_median": float(np.median(det)),
          "abs_min": float(det.min()),
          "abs_max": float(det.max()),
          "near_one_share": float(np.mean(np.abs(det - 1) <= det_tol)),
        },
        "fixed_points": {
          "finite_share": float(finite.size / points.size),
          "unit_disk_share": float(np.mean(np.abs(finite) <= 1)) if finite.size else 0.0,
          "median_modulus": float(np.median(np.abs(finite))) if finite.size else None,
        },
      }
    )
  return {
    "types": list(MOBIUS_TYPES),
    "tol": tol,
    "det_tol": det_tol,
    "layers": layers,
    "total": _counts_and_shares(total),
  }


def _counts_and_shares(counts: np.ndarray) -> dict:
  n = max(int(counts.sum()), 1)
  return {
    "counts": {name: int(c) for name, c in zip(MOBIUS_TYPES, counts, strict=True)},
    "shares": {name: float(c) / n for name, c in zip(MOBIUS_TYPES, counts, strict=True)},
  }


def representative_maps(
  maps: dict[int, MapCoefficients], *, tol: float = 1e-3, per_type: int = 1
) -> list[tuple[str, MapCoefficients]]:
  """For each type of map present, the `per_type` maps that move the plane most.

  Degenerate and non-finite coefficients are no maps of the sphere and are left out.

  "Most" is the distance of the normalised matrix from ±I, so the pictures show the clearest
  example of each type rather than a near-identity one.

  Returns:
    [(label such as "layer 0, head 1, dim 5: hyperbolic", scalar map (a, b, c, d))].
  """
  chosen = []
  for code, name in enumerate(MOBIUS_TYPES):
    if name in ("degenerate", "non-finite"):  # no map of the sphere: nothing to draw
      continue
    candidates = []
    for layer, m in maps.items():
      codes = np.asarray(classify(m, tol=tol))
      scale = 1 / np.sqrt(np.asarray(determinant(m)) + 0j)
      a, b, c, d = (x * scale for x in m)
      distance = np.minimum(
        np.abs(a - 1) + np.abs(b) + np.abs(c) + np.abs(d - 1),
        np.abs(a + 1) + np.abs(b) + np.abs(c) + np.abs(d + 1),
      )
      for head, dim in zip(*np.nonzero(codes == code), strict=True):
        candidates.append((distance[head, dim], layer, head, dim))
    for _, layer, head, dim in sorted(candidates, reverse=True)[:per_type]:
      label = f"layer {layer}, head {head}, dim {dim}: {name}"
      chosen.append((label, tuple(x[head, dim] for x in maps[layer])))
  return chosen
