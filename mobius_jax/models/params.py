"""Parameter counts, and the README's table of them for every preset.

python -m mobius_jax.models.params     # prints the table
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mobius_jax.models.config import MODELS, SIZES, ModelConfig
from mobius_jax.models.transformer import Transformer


def count_params(params) -> int:
  """Number of real parameters in a tree (complex weights are stored, so counted, as two)."""
  return sum(int(x.size) for x in jax.tree.leaves(nn.meta.unbox(params)))


def count_encoder_params(config: ModelConfig) -> int:
  """Parameters of the encoder with BERT's pooler (HF's `BertModel`), without allocating."""
  ids = jnp.zeros((1, 1), jnp.int32)
  return count_params(jax.eval_shape(Transformer(config).init, jax.random.key(0), ids))


def preset_table() -> str:
  """Markdown table: millions of encoder parameters per preset (model × size)."""
  lines = ["| size | " + " | ".join(MODELS) + " |", "|---|" + "---:|" * len(MODELS)]
  for size in SIZES:
    counts = [count_encoder_params(ModelConfig.preset(f"{m}-{size}")) / 1e6 for m in MODELS]
    lines.append(f"| {size} | " + " | ".join(f"{c:.1f}M" for c in counts) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  print(preset_table())
