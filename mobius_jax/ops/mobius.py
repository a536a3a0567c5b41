"""Möbius maps f(z) = (a z + b) / (c z + d) as pure, jit-, grad- and vmap-friendly functions.

Conventions:
  * A map `m` is the tuple `(a, b, c, d)` (`MapCoefficients`) of complex arrays of one shape
    `[...]` (any shape, scalars included): an array of maps, one per element. Its matrix is
    [[a, b], [c, d]], which acts on homogeneous coordinates of the Riemann sphere, so
    composition is the matrix product and scaling all four entries by λ ≠ 0 gives the same map.
  * The point at infinity is the complex value `inf + 0j`.
  * Layers store complex numbers as `Pair`s of real arrays (optax, orbax, bfloat16 and TPUs
    handle real arrays best); `mobius_transform_pair` is the map in that form.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

from mobius_jax.ops.types import MapCoefficients, Pair

MOBIUS_TYPES = (
  "identity",
  "parabolic",
  "elliptic",
  "hyperbolic",
  "loxodromic",
  "degenerate",
  "non-finite",
)
"""Names of the codes `classify` returns: `MOBIUS_TYPES[code]`.

`degenerate` (ad − bc = 0) is not a Möbius map at all, and neither is `non-finite` (a NaN or
infinite coefficient); both are reported so that analysis of learned coefficients can count such
maps instead of mislabelling them. New names go at the end, so that codes keep their values.
"""


def mobius_transform(z: Array, a: Array, b: Array, c: Array, d: Array, *, eps: float = 0.0):
  """Applies f(z) = (a z + b) / (c z + d) element-wise on complex arrays.

  Computed as `mobius_transform_pair` on the real and imaginary parts, so it shares that
  function's overflow-safe evaluation.

  Args:
    z: complex array; broadcasts with the coefficients.
    a, b, c, d: complex coefficient arrays, broadcastable to each other and to `z`.
    eps: 0 gives the exact map (infinite or NaN at the pole z = −d/c). With `eps > 0` the
      pole-safe form n · conj(m) / (|m|² + eps), n = a z + b, m = c z + d, is used: smooth in
      every input, equal to f(z) up to a relative error eps / |m|² away from the pole, bounded
      by |n| / (2 √eps), and with finite gradients everywhere, the pole included.

  Returns:
    f(z), complex, with the broadcast shape of the inputs.
  """
  parts = [(jnp.real(x), jnp.imag(x)) for x in (z, a, b, c, d)]
  return jax.lax.complex(*mobius_transform_pair(*parts, eps=eps))


def mobius_transform_pair(z: Pair, a: Pair, b: Pair, c: Pair, d: Pair, *, eps: float = 0.0):
  """`mobius_transform` on complex numbers given as `(real, imag)` pairs of real arrays.

  This is the form layers use: it needs no complex dtype, so it runs in float32 and bfloat16
  (on any backend) and computes in the inputs' promoted dtype.

  Nothing over- or underflows on the way: small coefficients are scaled up to a largest part
  of 1, z enters in homogeneous coordinates (z / t : 1 / t), t = max(|Re z|, |Im z|, 1), and n
  and m are divided by the size of m (at least √eps, in these units) before anything is
  squared. So for every finite z and coefficients below 1e38, in float32 and bfloat16 alike,
  the value is finite, and accurate wherever it is representable (for eps = 0: off the pole)
  up to the map's own conditioning (near its pole or its zero, or near-degenerate
  coefficients). Its gradients are finite, and as accurate, except where |f(z)| is below
  about 1e-30 · max(1, the largest coefficient part): there they may underflow to 0.

  Args:
    z: pair `(z_re, z_im)` of real arrays, e.g. `[B, L, D]` for D complex channels.
    a, b, c, d: coefficient pairs broadcastable to `z`, e.g. `[D]` for one map per channel.
    eps: as in `mobius_transform`: 0 is exact, > 0 is the pole-safe form.

  Returns:
    Pair `(re, im)` of f(z), with the broadcast shape.
  """
  # The scales below only pick the units: the result does not depend on them, so their
  # gradient is zero and stopping it is exact (and keeps max and abs out of the backward pass).
  # The coefficients are divided by λ = min(their largest part, 1) (the same map; ε follows
  # below), so that products with a small z do not underflow; z enters as (z / t : 1 / t),
  # t = |z| within [1, 2^100], so that products with a large z do not overflow. Scaling the
  # coefficients down as well would let the backward pass overflow (its cotangents of n and m
  # grow with the scales) where every gradient is representable.
  largest = functools.reduce(jnp.maximum, [jnp.abs(part) for x in (a, b, c, d) for part in x])
  inv_lam = jax.lax.stop_gradient(1 / jnp.clip(largest, 2.0**-120, 1))
  a, b, c, d = ((x[0] * inv_lam, x[1] * inv_lam) for x in (a, b, c, d))
  size_z = jnp.maximum(jnp.abs(z[0]), jnp.abs(z[1]))
  inv_t = jax.lax.stop_gradient(1 / jnp.clip(size_z, 1, 2.0**100))
  w = (z[0] * inv_t, z[1] * inv_t)
  num = _pair_add(_pair_mul(a, w), (b[0] * inv_t, b[1] * inv_t))
  den = _pair_add(_pair_mul(c, w), (d[0] * inv_t, d[1] * inv_t))
  # n conj(m) / (|m|² + ε) is unchanged when n and m are divided by s and ε by s², here in the
  # units above (ε / (λ t)²). s = max(|m_re|, |m_im|, √ε / (λ t)) bounds |m / s| ≤ √2 and
  # √ε / (λ t s) ≤ 1, and gives |m / s|² + ε / (λ t s)² ≥ 1: nothing overflows or divides by ~0.
  root = eps**0.5 * inv_lam * inv_t
  scale = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(jnp.abs(den[0]), jnp.abs(den[1])), root))
  # s = 0 only at the pole itself with ε / (λ t)² = 0: ε = 0 (the exact map: NaN there), or
  # λ t so large that √ε / (λ t) underflows (the pole-safe value there is 0).
  pole = scale == 0
  inv_s = 1 / jnp.where(pole, 1, scale)
  num = (num[0] * inv_s, num[1] * inv_s)
  den = (den[0] * inv_s, den[1] * inv_s)
  den_sq = den[0] ** 2 + den[1] ** 2
  if eps > 0:
    den_sq = den_sq + jnp.where(pole, 1, (root * inv_s) ** 2)
  inv_den = 1 / den_sq
  # n · conj(m) / |m|²
  return (
    (num[0] * den[0] + num[1] * den[1]) * inv_den,
    (num[1] * den[0] - num[0] * den[1]) * inv_den,
  )


def _pair_mul(x: Pair, y: Pair) -> Pair:
  return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]


def _pair_add(x: Pair, y: Pair) -> Pair:
  return x[0] + y[0], x[1] + y[1]


def determinant(m: MapCoefficients) -> Array:
  """Returns ad − bc for each map (shape `[...]`); zero means the matrix is no Möbius map."""
  a, b, c, d = m
  return a * d - b * c


def compose(m1: MapCoefficients, m2: MapCoefficients) -> MapCoefficients:
  """Returns m1 ∘ m2 (apply `m2` first), the matrix product M1 · M2; shapes broadcast."""
  a1, b1, c1, d1 = m1
  a2, b2, c2, d2 = m2
  return (a1 * a2 + b1 * c2, a1 * b2 + b1 * d2, c1 * a2 + d1 * c2, c1 * b2 + d1 * d2)


def inverse(m: MapCoefficients) -> MapCoefficients:
  """Returns the inverse map: the adjugate [[d, −b], [−c, a]] (equal to M⁻¹ up to scale)."""
  a, b, c, d = m
  return d, -b, -c, a


def normalize(m: MapCoefficients) -> MapCoefficients:
  """Scales each matrix to determinant 1 (the same map), by the principal √(ad − bc).

  The result is defined up to the sign ±1, which does not change the map.
  """
  scale = 1.0 / jnp.sqrt(determinant(m))
  return tuple(x * scale for x in m)


def fixed_points(m: MapCoefficients) -> tuple[Array, Array]:
  """Returns the two fixed points of each map: the roots of c z² + (d − a) z − b = 0.

  A map with c = 0 fixes infinity (`inf + 0j`): z → (a z + b) / d has fixed points
  b / (d − a) and infinity, and a translation (a = d) has infinity twice. A parabolic map
  returns its one fixed point twice. The identity fixes every point: both are NaN.

  Returns:
    Two complex arrays of shape `[...]`; uses the cancellation-free quadratic formula, so both
    roots are accurate also when c is tiny.
  """
  a, b, c, d = m
  lin, const = d - a, -b
  root = jnp.sqrt(lin * lin - 4 * c * const)
  # Pick the sign that adds `lin` and `root` without cancellation.
  root = jnp.where(jnp.real(jnp.conj(lin) * root) >= 0, root, -root)
  q = -(lin + root) / 2
  inf = jnp.array(jnp.inf, dtype=q.dtype)
  z1 = jnp.where(c == 0, inf, q / jnp.where(c == 0, 1, c))
  z2 = jnp.where(q == 0, z1, const / jnp.where(q == 0, 1, q))
  is_identity = (b == 0) & (c == 0) & (a == d)
  nan = jnp.array(jnp.nan, dtype=q.dtype)
  return jnp.where(is_identity, nan, z1), jnp.where(is_identity, nan, z2)


def classify(m: MapCoefficients, *, tol: float = 1e-5) -> Array:
  """Classifies each map by σ = (a + d)² / (ad − bc), which is invariant under scaling.

  identity: M = λI; parabolic: σ = 4; elliptic: σ real in [0, 4) (rotations about the fixed
  points); hyperbolic: σ real > 4 (scalings); loxodromic: σ not real; degenerate: ad − bc = 0;
  non-finite: an entry is NaN or infinite.

  Args:
    m: map `(a, b, c, d)` of complex arrays of shape `[...]`.
    tol: tolerance. A map counts as the identity when max(|b|, |c|, |a − d|) ≤ tol · max|entry|,
      as degenerate when |ad − bc| ≤ tol · max|entry|², as parabolic when |σ − 4| ≤ s and
      σ as real when |Im σ| ≤ s, where s = max(tol, 16 ε κ): σ's rounding error grows with the
      matrix's conditioning κ = max|entry|² / |ad − bc| (1 for a rotation; ε is the dtype's
      machine epsilon), so a badly conditioned map (a conjugate of a simple one by a far from
      unitary matrix) keeps its type. The matrix is first divided by its largest real or
      imaginary part, so no product overflows or underflows: scaling the matrix, by 1e-30 or by
      1e30, does not change its type.

  Returns:
    int32 array of shape `[...]`: indices into `MOBIUS_TYPES`.
  """
  parts = [part for x in m for part in (jnp.real(x), jnp.imag(x))]
  finite = functools.reduce(jnp.logical_and, [jnp.isfinite(part) for part in parts])
  largest = functools.reduce(jnp.maximum, [jnp.abs(part) for part in parts])
  # The zero matrix stays zero (degenerate); a non-finite one is reported before it is used.
  largest = jnp.where(finite & (largest > 0), largest, 1)
  a, b, c, d = m = tuple(x / largest for x in m)
  size = jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), jnp.maximum(jnp.abs(c), jnp.abs(d)))
  det = determinant(m)
  degenerate = jnp.abs(det) <= tol * size**2
  off_identity = jnp.maximum(jnp.maximum(jnp.abs(b), jnp.abs(c)), jnp.abs(a - d))
  identity = off_identity <= tol * size
  det = jnp.where(degenerate, 1, det)
  sigma = (a + d) ** 2 / det
  conditioning = size**2 / jnp.abs(det)
  slack = jnp.maximum(tol, 16 * jnp.finfo(conditioning.dtype).eps * conditioning)
  real = jnp.abs(jnp.imag(sigma)) <= slack
  parabolic = jnp.abs(sigma - 4) <= slack
  elliptic = real & (jnp.real(sigma) >= -slack) & (jnp.real(sigma) < 4)
  hyperbolic = real & (jnp.real(sigma) > 4)
  # The first condition that holds gives the type.
  conditions = {
    "non-finite": ~finite,
    "degenerate": degenerate,
    "identity": identity,
    "parabolic": parabolic,
    "elliptic": elliptic,
    "hyperbolic": hyperbolic,
  }
  code = jnp.select(
    list(conditions.values()),
    [MOBIUS_TYPES.index(name) for name in conditions],
    default=MOBIUS_TYPES.index("loxodromic"),
  )
  return code.astype(jnp.int32)
