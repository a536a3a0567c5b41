"""Pure functions: complex Möbius maps, attention and position encodings."""

from mobius_jax.ops.attention import (
  IMPLEMENTATIONS,
  SCORE_MODES,
  attention_logits,
  attention_weights,
  dot_product_attention,
  mobius_attention_logits,
  mobius_attention_reference,
  mobius_dot_product_attention,
  padding_mask,
)
from mobius_jax.ops.mobius import (
  MOBIUS_TYPES,
  classify,
  compose,
  determinant,
  fixed_points,
  inverse,
  mobius_transform,
  mobius_transform_pair,
  normalize,
)
from mobius_jax.ops.positions import (
  apply_complex_rope,
  apply_rope,
  query_positions,
  rotary_frequencies,
  sinusoidal_position_encoding,
  take_tokens,
)
from mobius_jax.ops.types import MapCoefficients, Pair

__all__ = [
  "IMPLEMENTATIONS",
  "MOBIUS_TYPES",
  "SCORE_MODES",
  "MapCoefficients",
  "Pair",
  "apply_complex_rope",
  "apply_rope",
  "attention_logits",
  "attention_weights",
  "classify",
  "compose",
  "determinant",
  "dot_product_attention",
  "fixed_points",
  "inverse",
  "mobius_attention_logits",
  "mobius_attention_reference",
  "mobius_dot_product_attention",
  "mobius_transform",
  "mobius_transform_pair",
  "normalize",
  "padding_mask",
  "query_positions",
  "rotary_frequencies",
  "sinusoidal_position_encoding",
  "take_tokens",
]


def __getattr__(name: str):
  # `splash_attention` (the TPU kernel, `tpu_attention`) imports Pallas: only when asked for.
  if name == "splash_attention":
    from mobius_jax.ops.tpu_attention import splash_attention

    return splash_attention
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
