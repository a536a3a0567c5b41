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

import jax.numpy as jnp
from jax import Array

from mobius_jax.ops.types import MapCoefficients, Pair

MOBIUS_TYPES = ("identity", "parabolic", "elliptic", "hyperbolic", "loxodromic", "degenerate")
"""Names of the codes `classify` returns: `MOBIUS_TYPES[code]`.

`degenerate` (ad − bc = 0) is not a Möbius map at all; it is reported so that analysis of
learned coefficients can count such maps instead of mislabelling them.
"""


def mobius_transform(z: Array, a: Array, b: Array, c: Array, d: Array, *, eps: float = 0.0):
  """Applies f(z) = (a z + b) / (c z + d) element-wise on complex arrays.

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
  num = a * z + b
  den = c * z + d
  if eps == 0.0:
    return num / den
  # |m|² as a sum of squares, not abs(m)**2: abs has a non-differentiable sqrt at 0.
  den_sq = jnp.real(den) ** 2 + jnp.imag(den) ** 2
  return num * jnp.conj(den) / (den_sq + eps)


def mobius_transform_pair(z: Pair, a: Pair, b: Pair, c: Pair, d: Pair, *, eps: float = 0.0):
  """`mobius_transform` on complex numbers given as `(real, imag)` pairs of real arrays.

  This is the form layers use: it needs no complex dtype, so it runs in float32 and bfloat16
  (on any backend) and computes in the inputs' promoted dtype.

  Args:
    z: pair `(z_re, z_im)` of real arrays, e.g. `[B, L, D]` for D complex channels.
    a, b, c, d: coefficient pairs broadcastable to `z`, e.g. `[D]` for one map per channel.
    eps: as in `mobius_transform`: 0 is exact, > 0 is the pole-safe form.

  Returns:
    Pair `(re, im)` of f(z), with the broadcast shape.
  """
  num = _pair_add(_pair_mul(a, z), b)
  den = _pair_add(_pair_mul(c, z), d)
  den_sq = den[0] ** 2 + den[1] ** 2 + eps
  # n · conj(m) / |m|²
  return (
    (num[0] * den[0] + num[1] * den[1]) / den_sq,
    (num[1] * den[0] - num[0] * den[1]) / den_sq,
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
  points); hyperbolic: σ real > 4 (scalings); loxodromic: σ not real; degenerate: ad − bc = 0.

  Args:
    m: map `(a, b, c, d)` of complex arrays of shape `[...]`.
    tol: tolerance. A map counts as the identity when max(|b|, |c|, |a − d|) ≤ tol · max|entry|,
      as degenerate when |ad − bc| ≤ tol · max|entry|², as parabolic when |σ − 4| ≤ tol and
      σ as real when |Im σ| ≤ tol. All tests are relative, so the result does not change when
      the matrix is scaled.

  Returns:
    int32 array of shape `[...]`: indices into `MOBIUS_TYPES`.
  """
  a, b, c, d = m
  size = jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), jnp.maximum(jnp.abs(c), jnp.abs(d)))
  det = determinant(m)
  degenerate = jnp.abs(det) <= tol * size**2
  off_identity = jnp.maximum(jnp.maximum(jnp.abs(b), jnp.abs(c)), jnp.abs(a - d))
  identity = off_identity <= tol * size
  sigma = (a + d) ** 2 / jnp.where(degenerate, 1, det)
  real = jnp.abs(jnp.imag(sigma)) <= tol
  parabolic = jnp.abs(sigma - 4) <= tol
  elliptic = real & (jnp.real(sigma) >= -tol) & (jnp.real(sigma) < 4)
  hyperbolic = real & (jnp.real(sigma) > 4)
  # The first condition that holds gives the type.
  conditions = {
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
