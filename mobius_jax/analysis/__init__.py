"""The paper's analysis of trained models: learned Möbius maps, attention statistics, figures.

report = map_report(params, config)             # types, determinants, fixed points per layer
weights = model_attention_weights(params, config, ids, attention_mask=mask)
stats = attention_statistics(weights, mask, config)   # entropy, near-zero share per head
plot_type_shares(report, "types.png")
"""

from mobius_jax.analysis.attention import (
  HEAD_KINDS,
  attention_statistics,
  head_kinds,
  model_attention_weights,
)
from mobius_jax.analysis.maps import encoder_params, map_report, mobius_maps, representative_maps
from mobius_jax.analysis.plots import plot_attention, plot_map_images, plot_type_shares

__all__ = [
  "HEAD_KINDS",
  "attention_statistics",
  "encoder_params",
  "head_kinds",
  "map_report",
  "mobius_maps",
  "model_attention_weights",
  "plot_attention",
  "plot_map_images",
  "plot_type_shares",
  "representative_maps",
]
