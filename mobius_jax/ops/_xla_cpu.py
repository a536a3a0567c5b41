"""Dropout and the bias add, with a faster form for XLA:CPU (private: what the layers use).

Each function chooses its form when the program is lowered (`jax.lax.platform_dependent`), for
the platform it is lowered for: the CPU form there, the plain form (flax's dropout, `x + b`)
on every other backend. Both forms give the same values, masks and gradients (tested). The
measurements behind the CPU forms are in `benchmarks/README.md`.
"""

from __future__ import annotations

import functools
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

  The mask is `jax.random.bernoulli(rng, 1 − rate, x.shape)`'s, as in `flax.linen.Dropout`, so
  the same key drops the same entries on every backend. On XLA:CPU the kept entries are
  multiplied by a saved float32 mask, whose bits are drawn in one fused pass (`bernoulli`):
  XLA:CPU otherwise recomputes the mask inside the weight gradients' transposes.

  Args:
    x: the input, any shape; the output has its shape and dtype.
    rate: the probability of dropping an entry, in [0, 1).
    rng: a PRNG key.
  """
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}.")
  if rate == 0.0:
    return x
  return jax.lax.platform_dependent(
    x,
    rng,
    cpu=functools.partial(_cpu_dropout, rate=rate),
    default=functools.partial(_flax_dropout, rate=rate),
  )


def _flax_dropout(x: Array, rng: Array, *, rate: float) -> Array:
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jax.lax.select(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _cpu_dropout(x: Array, rng: Array, *, rate: float) -> Array:
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
  threefry-2x32's 20 rounds and XORs the two output words. Its CPU lowering runs the rounds as
  a rolled loop through memory; written as array ops here, they fuse into one pass. Indices are
  below 2³², so the high word is 0.
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


def add_bias(x: Array, bias: Array) -> Array:
  """x + bias over the last axis: x `[..., F]`, bias `[F]` → `[..., F]`, x's dtype.

  On XLA:CPU the bias gradient, a sum over all rows, is taken as the product `ones @ dy`
  (`_cpu_add_bias`): XLA:CPU runs that reduction over a masked LM's logits far slower.
  """
  return jax.lax.platform_dependent(
    x, bias, cpu=_cpu_add_bias, default=lambda x, bias: x + bias.astype(x.dtype)
  )


@jax.custom_vjp
def _cpu_add_bias(x: Array, bias: Array) -> Array:
  return x + bias.astype(x.dtype)


def _forward(x, bias):
  return _cpu_add_bias(x, bias), bias


def _backward(bias, dy):
  rows = dy.reshape(-1, dy.shape[-1])
  ones = jnp.ones(rows.shape[0], rows.dtype)
  dbias = jnp.dot(ones, rows, preferred_element_type=jnp.float32)
  return dy, dbias.astype(bias.dtype)


_cpu_add_bias.defvjp(_forward, _backward)
