"""`MobiusMap`: a learned Möbius map per channel, applied element-wise."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mobius_jax.layers.config import MOBIUS_INITS
from mobius_jax.layers.dense import partitioned
from mobius_jax.ops import Pair, mobius_transform_pair
from mobius_jax.sharding import COEFFS, HEADS, PARTS


def identity_init(noise: float):
  """a = d = 1, b = c = 0 (the identity map), plus normal(noise) on every real number."""

  def init(key, shape, dtype=jnp.float32):
    identity = jnp.zeros(shape, dtype).at[0, 0].set(1).at[3, 0].set(1)
    return identity + noise * jax.random.normal(key, shape, dtype)

  return init


def unitary_init(key, shape, dtype=jnp.float32):
  """Uniformly random rotations of the Riemann sphere: [[a, b], [−b̄, ā]], |a|² + |b|² = 1.

  These are the unitary (SU(2)) Möbius maps, all elliptic; a unit quaternion drawn uniformly
  gives (Re a, Im a, Re b, Im b).
  """
  quaternion = jax.random.normal(key, (4, *shape[2:]), jnp.float32)
  a_re, a_im, b_re, b_im = quaternion / jnp.linalg.norm(quaternion, axis=0)
  coefficients = jnp.stack(
    [
      jnp.stack([a_re, a_im]),
      jnp.stack([b_re, b_im]),
      jnp.stack([-b_re, b_im]),  # −conj(b)
      jnp.stack([a_re, -a_im]),  # conj(a)
    ]
  )
  return coefficients.astype(dtype)


class MobiusMap(nn.Module):
  """z_j → (a_j z_j + b_j) / (c_j z_j + d_j) for each channel j, with learned coefficients.

  Parameter `coefficients` `[4, 2, dims]`: (a, b, c, d) × (real, imag) × channel, real
  numbers so that optimisers, checkpoints and bfloat16 handle them like any weight. The map
  is evaluated in its pole-safe form (see `mobius_jax.mobius_transform`).

  Attributes:
    initialization: "identity" (identity map plus `init_noise`) or "unitary" (random
      rotations).
    init_noise: std of the noise of the identity initialisation.
    eps: ε of the pole-safe form.
  """

  initialization: str = "identity"
  init_noise: float = 0.01
  eps: float = 1e-4
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: Pair) -> Pair:
    """z: pair of `[..., dims]` arrays → pair of `[..., dims]` arrays."""
    if self.initialization not in MOBIUS_INITS:
      raise ValueError(f"initialization={self.initialization!r}: use one of {MOBIUS_INITS}.")
    unitary = self.initialization == "unitary"
    init = unitary_init if unitary else identity_init(self.init_noise)
    coefficients = self.param(
      "coefficients",
      partitioned(init, (COEFFS, PARTS, HEADS)),
      (4, 2, z[0].shape[-1]),
      self.param_dtype,
    ).astype(self.dtype)
    a, b, c, d = ((coefficients[i, 0], coefficients[i, 1]) for i in range(4))
    z = tuple(part.astype(self.dtype) for part in z)
    if self.is_mutable_collection("diagnostics") and not self.is_initializing():
      self._sow_pole_distance(z, c, d)
    return mobius_transform_pair(z, a, b, c, d, eps=self.eps)

  def _sow_pole_distance(self, z: Pair, c: Pair, d: Pair) -> None:
    """How near the inputs come to the pole −d/c: the smallest |c z + d| (the distance to the
    pole times |c|), and the share of inputs where |c z + d|² < 10 ε, where the pole-safe ε
    changes the map by more than 10 %."""
    m_re = (c[0] * z[0] - c[1] * z[1] + d[0]).astype(jnp.float32)
    m_im = (c[0] * z[1] + c[1] * z[0] + d[1]).astype(jnp.float32)
    size = m_re**2 + m_im**2
    self.sow("diagnostics", "pole_distance_min", jnp.sqrt(size.min()))
    self.sow("diagnostics", "near_pole_share", (size < 10 * self.eps).mean())
