"""Parameter counts of parameter trees and of model configs (`python -m train.params` prints
them for every preset)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mobius_jax.models.config import ModelConfig
from mobius_jax.models.transformer import Transformer


def count_params(params) -> int:
  """Number of real parameters in a tree (complex weights are stored, so counted, as two)."""
  return sum(int(x.size) for x in jax.tree.leaves(nn.meta.unbox(params)))


def count_encoder_params(config: ModelConfig) -> int:
  """Parameters of the encoder with BERT's pooler (HF's `BertModel`), without allocating."""
  ids = jnp.zeros((1, 1), jnp.int32)
  return count_params(jax.eval_shape(Transformer(config).init, jax.random.key(0), ids))
