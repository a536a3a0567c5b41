"""Dropout as a product with a saved scale mask (fast backward on XLA:CPU)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

# Threefry-2x32's rotation constants (Salmon et al. 2011, "Parallel random numbers: as easy as
# 1, 2, 3"), the ones `jax.random` uses.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def dropout(x: Array, rate: float, rng: Array) -> Array:
  """Inverted dropout: zero each entry of `x` `[...]` with probability `rate`, scale the rest.

  Returns `x * m` with `m` = 1 / (1 − rate) where kept, 0 where dropped (`x`'s shape and
  dtype). The mask is `jax.random.bernoulli(rng, 1 − rate, shape)`'s, as in `flax.linen.Dropout`
  (so the same key drops the same entries), drawn by `bernoulli`. Where flax selects, this
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
  keep = bernoulli(rng, 1.0 - rate, x.shape)
  scale = jnp.where(keep, jnp.float32(1.0 / (1.0 - rate)), jnp.float32(0.0))
  return (x * scale).astype(x.dtype)


def bernoulli(rng: Array, p: float, shape: tuple[int, ...]) -> Array:
  """`jax.random.bernoulli(rng, p, shape)`, bit for bit: a bool array of `shape`.

  For a threefry key (JAX's default) the bits come from `threefry_bits`; any other case (another
  PRNG, `jax_threefry_partitionable` off, 64-bit floats, 2³² elements or more) calls
  `jax.random.bernoulli`, whose bits are laid out differently there.
  """
  size = math.prod(shape)
  if (
    str(jax.random.key_impl(rng)) != "threefry2x32"
    or not jax.config.jax_threefry_partitionable
    or jax.config.jax_enable_x64
    or size >= 2**32
  ):
    return jax.random.bernoulli(rng, p, shape)
  # jax.random.bernoulli tests uniform < p, where uniform = (bits >> 9) / 2**23 (float32's 23
  # mantissa bits), that is (bits >> 9) < p * 2**23 for a float32 p.
  threshold = math.ceil(float(np.float32(p)) * 2**23)
  with jax.named_scope("bernoulli"):  # as jax.random's ops are named, in profiles and HLO
    bits = threefry_bits(jax.random.key_data(rng), size)
    return (bits >> jnp.uint32(9) < jnp.uint32(threshold)).reshape(shape)


def threefry_bits(key_data: Array, size: int) -> Array:
  """`jax.random.bits(key, (size,), jnp.uint32)` for a threefry key's data `[2]`, bit for bit.

  JAX (with `jax_threefry_partitionable`, its default) hashes each element's index with
  threefry-2x32's 20 rounds and XORs the two output words. On the CPU it lowers the rounds as a
  rolled loop, which carries both `[size]` words through memory five times; written as array
  ops they fuse into one pass (2× faster for a dropout mask alone; a bert-small train step
  1.0–1.4 % faster, bert-tiny's 3 %: `benchmarks/README.md`). Indices below 2³², so the high
  word is 0.
  """
  k0, k1 = key_data[0], key_data[1]
  ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
  x0 = jnp.zeros((size,), jnp.uint32) + ks[0]
  x1 = jax.lax.iota(jnp.uint32, size) + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
      x1 = x1 ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
  return x0 ^ x1
