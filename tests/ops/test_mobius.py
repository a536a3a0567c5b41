"""Properties of the pure Möbius-map functions."""

import cmath
import functools
from math import inf

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from jax.test_util import check_grads

import mobius_jax as mj

RTOL = 2e-5  # float32 tolerance, for O(1) coefficients that are far from degenerate.

complex_numbers = st.complex_numbers(min_magnitude=0.0, max_magnitude=3.0)
maps = st.tuples(complex_numbers, complex_numbers, complex_numbers, complex_numbers).filter(
  lambda m: abs(m[0] * m[3] - m[1] * m[2]) > 0.3
)


def as_map(m):
  return tuple(jnp.asarray(x, jnp.complex64) for x in m)


def apply(m, z):
  return mj.mobius_transform(jnp.asarray(z, jnp.complex64), *as_map(m))


def pole_distance(m, z):
  return abs(m[2] * z + m[3])


@given(maps, maps)
def test_compose_is_the_matrix_product(m1, m2):
  composed = np.array(mj.compose(as_map(m1), as_map(m2))).reshape(2, 2)
  expected = np.array(m1).reshape(2, 2) @ np.array(m2).reshape(2, 2)
  np.testing.assert_allclose(composed, expected, rtol=RTOL, atol=1e-5)


@given(maps, maps, complex_numbers)
def test_compose_composes_pointwise(m1, m2, z):
  inner = complex(apply(m2, z))
  assume(pole_distance(m2, z) > 0.3 and pole_distance(m1, inner) > 0.3)
  assume(abs(inner) < 1e3)
  composed = mj.compose(as_map(m1), as_map(m2))
  np.testing.assert_allclose(
    mj.mobius_transform(jnp.complex64(z), *composed), apply(m1, inner), rtol=1e-4, atol=1e-4
  )


@given(maps, complex_numbers)
def test_inverse_undoes_the_map(m, z):
  assume(pole_distance(m, z) > 0.3)
  image = apply(m, z)
  assume(abs(complex(image)) < 1e3)
  np.testing.assert_allclose(mj.mobius_transform(image, *mj.inverse(as_map(m))), z, atol=1e-4)
  np.testing.assert_allclose(
    mj.determinant(mj.compose(mj.inverse(as_map(m)), as_map(m))),
    mj.determinant(as_map(m)) ** 2,
    rtol=1e-4,
  )


@given(maps, complex_numbers)
def test_normalize_keeps_the_map_and_gives_determinant_one(m, z):
  normalized = mj.normalize(as_map(m))
  np.testing.assert_allclose(mj.determinant(normalized), 1.0, rtol=RTOL, atol=1e-5)
  assume(pole_distance(m, z) > 0.3)
  np.testing.assert_allclose(
    mj.mobius_transform(jnp.complex64(z), *normalized), apply(m, z), rtol=1e-4, atol=1e-5
  )


@given(maps)
def test_fixed_points_are_fixed(m):
  assume(abs(m[2]) > 0.3)  # c ≠ 0: both fixed points are finite.
  for point in mj.fixed_points(as_map(m)):
    assume(pole_distance(m, complex(point)) > 0.1 and abs(complex(point)) < 100)
    np.testing.assert_allclose(apply(m, point), point, rtol=1e-3, atol=1e-3)


def test_fixed_points_of_maps_that_fix_infinity():
  # 2z + 1 fixes −1 and ∞; z + 1 fixes ∞ twice; z / (z + 1) (parabolic) fixes 0 twice.
  m = as_map(([2, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 1, 1]))
  first, second = mj.fixed_points(m)
  np.testing.assert_array_equal(first[:3], [np.inf, np.inf, 0])
  np.testing.assert_array_equal(second[:3], [-1, np.inf, 0])
  assert np.isnan(first[3]) and np.isnan(second[3])  # The identity fixes every point.


# The codes before "non-finite" was added: analyses saved with them must keep their meaning.
TYPES_BEFORE_NON_FINITE = (
  "identity",
  "parabolic",
  "elliptic",
  "hyperbolic",
  "loxodromic",
  "degenerate",
)
TEXTBOOK_MAPS = {
  # z + 1, 2z, e^{iθ}z, (1 + i)z, z, and a rank-one matrix.
  "parabolic": (1, 1, 0, 1),
  "hyperbolic": (2, 0, 0, 1),
  "elliptic": (cmath.exp(0.7j), 0, 0, 1),
  "loxodromic": (1 + 1j, 0, 0, 1),
  "identity": (1, 0, 0, 1),
  "degenerate": (1, 2, 2, 4),
}


@pytest.mark.parametrize("name", TEXTBOOK_MAPS)
def test_classify_textbook_maps(name):
  assert mj.MOBIUS_TYPES[int(mj.classify(as_map(TEXTBOOK_MAPS[name])))] == name


@given(
  st.sampled_from(sorted(TEXTBOOK_MAPS)),
  st.complex_numbers(min_magnitude=1e-3, max_magnitude=1e3),
  maps,
)
def test_classify_is_invariant_under_scaling_and_conjugation(name, scale, conjugator):
  m = as_map(TEXTBOOK_MAPS[name])
  g = as_map(conjugator)
  conjugated = mj.compose(mj.normalize(g), mj.compose(m, mj.inverse(mj.normalize(g))))
  scaled = tuple(jnp.complex64(scale) * x for x in conjugated)
  assert mj.MOBIUS_TYPES[int(mj.classify(scaled, tol=1e-4))] == name


def test_classify_tolerance():
  # σ = (2 + δ)² / (1 + δ) = 4 + δ² / (1 + δ) ≈ 4 + 1e-4 for δ = 1e-2.
  nearly_parabolic = as_map((1, 1, 0, 1 + 1e-2))
  assert mj.MOBIUS_TYPES[int(mj.classify(nearly_parabolic))] == "hyperbolic"
  assert mj.MOBIUS_TYPES[int(mj.classify(nearly_parabolic, tol=1e-3))] == "parabolic"


@given(
  st.sampled_from(sorted(TEXTBOOK_MAPS)),
  maps,
  st.integers(-30, 30),
  st.floats(0, 2 * np.pi),
)
def test_classify_is_invariant_under_scaling_from_1e_minus_30_to_1e30(name, conjugator, k, phase):
  # Normalising by the largest part first: no σ, det or size² over- or underflows.
  m = as_map(TEXTBOOK_MAPS[name])
  if name != "degenerate":  # conjugating a rank-one matrix need not keep it rank one in float32
    g = mj.normalize(as_map(conjugator))
    m = mj.compose(g, mj.compose(m, mj.inverse(g)))
  scaled = tuple(x * jnp.complex64(10.0**k * cmath.exp(1j * phase)) for x in m)
  assert mj.MOBIUS_TYPES[int(mj.classify(scaled, tol=1e-4))] == name


def test_classify_keeps_the_type_of_a_badly_conditioned_conjugate():
  # A parabolic map conjugated by (3, 0, 2.5, 0.125): κ = max|entry|² / |det| ≈ 576, and σ's
  # float32 rounding (≈ 1e-4 here) passes tol = 1e-4; the slack 16 ε κ covers it. Well
  # conditioned maps keep the plain tolerance: the nearly parabolic map of
  # test_classify_tolerance is still hyperbolic at 1e-5.
  g = mj.normalize(as_map((3, 0, 2.5, 0.125)))
  for name in ("parabolic", "elliptic", "hyperbolic", "loxodromic"):
    m = mj.compose(g, mj.compose(as_map(TEXTBOOK_MAPS[name]), mj.inverse(g)))
    assert mj.MOBIUS_TYPES[int(mj.classify(m, tol=1e-4))] == name


def test_classify_reports_non_finite_maps_and_keeps_the_old_codes():
  assert mj.MOBIUS_TYPES[:6] == TYPES_BEFORE_NON_FINITE
  nan, inf = float("nan"), float("inf")
  m = as_map(
    (
      [inf, 1, 1, 1, complex(0, nan), 1],
      [0, nan, 0, 0, 0, 0],
      [0, 0, -inf, 0, 0, 0],
      [1, 1, 1, complex(1, inf), 1, 1],
    )
  )
  codes = [mj.MOBIUS_TYPES[i] for i in mj.classify(m)]
  assert codes == ["non-finite"] * 5 + ["identity"]
  assert mj.MOBIUS_TYPES[int(mj.classify(as_map((0, 0, 0, 0))))] == "degenerate"


def test_functions_vectorise_and_jit():
  names = sorted(TEXTBOOK_MAPS)
  m = tuple(jnp.array([TEXTBOOK_MAPS[n][i] for n in names], jnp.complex64) for i in range(4))
  codes = jax.jit(mj.classify)(m)
  assert [mj.MOBIUS_TYPES[i] for i in codes] == names
  chex.assert_trees_all_close(jax.vmap(mj.classify)(m), mj.classify(m))
  chex.assert_trees_all_close(jax.jit(mj.fixed_points)(m), mj.fixed_points(m))


# ---------------------------------------------------------------- the map and its pole-safe form


def test_exact_map_matches_the_formula():
  z = jnp.array([0.3 + 0.2j, -1.0 + 2.0j], jnp.complex64)
  expected = ((1 + 2j) * z + 3) / ((0.5 - 1j) * z + 2j)
  np.testing.assert_allclose(mj.mobius_transform(z, 1 + 2j, 3, 0.5 - 1j, 2j), expected, rtol=1e-6)


@given(maps, complex_numbers)
def test_pole_safe_form_equals_the_exact_map_away_from_the_pole(m, z):
  assume(pole_distance(m, z) > 1.0)  # relative error eps / |cz + d|² ≤ 1e-7
  z, coeffs = jnp.complex64(z), as_map(m)
  exact = mj.mobius_transform(z, *coeffs)
  np.testing.assert_allclose(mj.mobius_transform(z, *coeffs, eps=1e-7), exact, rtol=RTOL)
  pair = mj.mobius_transform_pair(*(_pair(x) for x in (z, *coeffs)), eps=1e-7)
  np.testing.assert_allclose(jax.lax.complex(*pair), exact, rtol=RTOL, atol=1e-6)


def _pair(x, dtype=jnp.float32):
  return jnp.real(x).astype(dtype), jnp.imag(x).astype(dtype)


# A map with its pole at z = 1 − i, and points on and around it.
POLE_MAP = (1 + 1j, 2.0, 0.5j, -0.5 - 0.5j)
POLE = 1 - 1j
OFFSETS = [0.0, 1e-9, 1e-6j, -1e-4, 1e-3 + 1e-3j, 1e-2]


def test_pole_safe_complex_form_is_finite_at_and_near_the_pole():
  z = jnp.array([POLE + o for o in OFFSETS], jnp.complex64)
  coeffs = as_map(POLE_MAP)
  assert np.all(np.isfinite(mj.mobius_transform(z, *coeffs, eps=1e-6)))
  # Gradient of |f|² with respect to z and to every coefficient.
  loss = lambda z, *m: jnp.sum(jnp.abs(mj.mobius_transform(z, *m, eps=1e-6)) ** 2)  # noqa: E731
  grads = jax.grad(loss, argnums=(0, 1, 2, 3, 4))(z, *coeffs)
  for g in grads:
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_pole_safe_pair_form_is_finite_at_and_near_the_pole(dtype):
  z = _pair(jnp.array([POLE + o for o in OFFSETS], jnp.complex64), dtype)
  coeffs = [_pair(jnp.complex64(x), dtype) for x in POLE_MAP]

  def loss(z, coeffs):
    re, im = mj.mobius_transform_pair(z, *coeffs, eps=1e-6)
    assert re.dtype == dtype
    return jnp.sum(re.astype(jnp.float32) ** 2 + im.astype(jnp.float32) ** 2)

  value, grads = jax.value_and_grad(loss, argnums=(0, 1))(z, coeffs)
  assert np.isfinite(value)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(g, np.float32)))


def test_exact_form_is_infinite_at_the_pole():
  # The reason the pole-safe form exists.
  assert not np.isfinite(complex(apply(POLE_MAP, POLE)))


def test_bfloat16_pair_form_is_close_to_float32():
  # Per element, away from the pole and from the zero (where f32 itself is ill-conditioned):
  # 3e-2 is about 8 bfloat16 ulps (2⁻⁸), for rounded inputs and the rounding of each step.
  z = jax.random.normal(jax.random.key(0), (2, 256))
  coeffs = [_pair(jnp.complex64(x)) for x in POLE_MAP]
  full = mj.mobius_transform_pair((z[0], z[1]), *coeffs, eps=1e-6)
  half = mj.mobius_transform_pair(
    (z[0].astype(jnp.bfloat16), z[1].astype(jnp.bfloat16)),
    *[(re.astype(jnp.bfloat16), im.astype(jnp.bfloat16)) for re, im in coeffs],
    eps=1e-6,
  )
  full, half = (
    np.asarray(x[0], np.float32) + 1j * np.asarray(x[1], np.float32) for x in (full, half)
  )
  z = np.asarray(z[0]) + 1j * np.asarray(z[1])
  a, b, c, d = POLE_MAP
  kept = (np.abs(c * z + d) > 0.5) & (np.abs(a * z + b) > 0.5)
  assert kept.sum() > 150  # of 256
  np.testing.assert_array_less(np.abs(half - full)[kept], 3e-2 * np.abs(full)[kept])


def test_pair_form_broadcasts_one_map_per_channel():
  # [B, L, D] inputs with one map per channel D, as a Möbius query layer applies them.
  keys = jax.random.split(jax.random.key(1), 10)
  z = (jax.random.normal(keys[0], (2, 3, 4)), jax.random.normal(keys[1], (2, 3, 4)))
  coeffs = [
    (jax.random.normal(k1, (4,)), jax.random.normal(k2, (4,)))
    for k1, k2 in zip(keys[2::2], keys[3::2], strict=True)
  ]
  re, im = mj.mobius_transform_pair(z, *coeffs)
  expected = mj.mobius_transform(jax.lax.complex(*z), *(jax.lax.complex(*c) for c in coeffs))
  np.testing.assert_allclose(re, jnp.real(expected), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(im, jnp.imag(expected), rtol=1e-4, atol=1e-5)


# ----------------------------------------------- magnitudes from 1e-30 to 1e30; check_grads

# The real function α Re f + β Im f whose gradients are checked (exact in bfloat16).
ALPHA, BETA = 0.75, -0.5
EPSILONS = (0.0, 1e-4, 1.0)


def _naive_pair(z, a, b, c, d, *, eps):
  """The documented formula as written, n · conj(m) / (|m|² + ε) (ε = 0: n / m), by hand.

  In float64 nothing in the sweep below over- or underflows: |n|, |m| ≤ 1e61, |m|⁴ ≤ 1e244.
  """

  def mul(x, y):
    return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]

  n = tuple(p + q for p, q in zip(mul(a, z), b, strict=True))
  m = tuple(p + q for p, q in zip(mul(c, z), d, strict=True))
  den = m[0] ** 2 + m[1] ** 2 + eps
  return (n[0] * m[0] + n[1] * m[1]) / den, (n[1] * m[0] - n[0] * m[1]) / den


def _value_and_grads(fn, eps):
  def loss(z, coeffs):
    re, im = fn(z, *coeffs, eps=eps)
    dtype = jnp.promote_types(re.dtype, jnp.float32)
    return ALPHA * re.astype(dtype) + BETA * im.astype(dtype), (re, im)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


OURS = {eps: _value_and_grads(mj.mobius_transform_pair, eps) for eps in EPSILONS}
NAIVE = {eps: _value_and_grads(_naive_pair, eps) for eps in EPSILONS}

components = st.floats(-2.0, 2.0)
random_maps = st.tuples(*[st.builds(complex, components, components)] * 4).filter(
  lambda m: abs(m[0] * m[3] - m[1] * m[2]) > 0.1 * max(map(abs, m)) ** 2 > 0
)


def _as_the_device_reads(part) -> np.float64:
  """An input part as float32 rounds it and XLA:CPU reads it: subnormals (below float32's
  smallest normal, bfloat16's too) flushed to zero."""
  x = np.float64(np.float32(part))
  return x if abs(x) >= np.finfo(np.float32).tiny else np.float64(0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@given(
  log_r=st.floats(-30, 30),
  theta=st.floats(0, 2 * np.pi),
  m=random_maps,
  k=st.integers(-30, 30),
  eps=st.sampled_from(EPSILONS),
)
# Cases each scaling is there for: |c z + d|² overflows; a z underflows (coefficients not scaled
# up); d / |z| underflows; a cotangent of m underflows (z not scaled) or overflows
# (coefficients scaled down); and the pole itself.
@example(log_r=30, theta=0, m=(2, 1, 1, 1), k=0, eps=1e-4)
@example(log_r=-23, theta=1, m=(-1.9j, 0, -0.3 + 0.6j, -0.1 + 0.9j), k=-24, eps=0.0)
@example(log_r=26, theta=0, m=(1j, 0, 0, 1j), k=-12, eps=1e-4)
@example(log_r=19, theta=0, m=(0, 1j, 1j, 0), k=0, eps=0.0)
@example(log_r=20.7, theta=0.3, m=(-0.2 + 2j, 0, 0, 0.9 + 1j), k=27, eps=0.0)
@example(log_r=0, theta=0, m=(1, 1, 1, -1), k=0, eps=1e-4)
# A subnormal coefficient (c = 2.5e-39 i), which XLA:CPU reads as 0.
@example(log_r=10, theta=0, m=(1j, 0, 2.467851193689162e-16j, 1j), k=-23, eps=0.0)
def test_values_and_gradients_are_finite_and_accurate_from_1e_minus_30_to_1e30(
  dtype, log_r, theta, m, k, eps
):
  # z = r e^{iθ} and the coefficients scaled by 10^k: |n| and |m| reach 1e61, |m|² 1e122.
  values = [10.0**log_r * cmath.exp(1j * theta), *(x * 10.0**k for x in m)]
  pairs = [(jnp.asarray(x.real, dtype), jnp.asarray(x.imag, dtype)) for x in values]
  (_, out), grads = OURS[eps](pairs[0], pairs[1:])
  # The reference: the same (rounded) inputs, the naive formula in float64.
  inputs = [tuple(_as_the_device_reads(part) for part in pair) for pair in pairs]
  with jax.enable_x64(True):
    (_, expected), expected_grads = NAIVE[eps](inputs[0], inputs[1:])
  z, a, b, c, d = (complex(*pair) for pair in inputs)
  out, expected = complex(*np.float32(out)), complex(*expected)
  # Rounding errors scale with (|a z| + |b|)(|c z| + |d|) / (|m|² + ε), which bounds |f| and
  # is what cancellation in n and m leaves; below 1e-37 float32 flushes to zero.
  pole_distance = abs(c * z + d) ** 2 + eps
  scale = (abs(a * z) + abs(b)) * (abs(c * z) + abs(d)) / pole_distance if pole_distance else inf
  rtol, atol = 16 * float(jnp.finfo(dtype).eps), 1e-37
  if abs(expected) < 1e37:  # representable (ε = 0: not at the pole)
    assert abs(out - expected) <= rtol * scale + atol, (out, expected)
  grads = np.float32(jax.tree.leaves(grads)).reshape(5, 2)
  expected_grads = np.float64(jax.tree.leaves(expected_grads)).reshape(5, 2)
  if np.all(np.abs(expected_grads) < 1e30):  # representable, with room for rounding
    assert np.all(np.isfinite(grads)), grads
    # Accurate as documented: but where |f| < 1e-30 max(1, largest part), where they may
    # underflow. ∂f/∂x · x is on the scale of f, for each input x.
    largest = max(max(abs(x.real), abs(x.imag)) for x in (a, b, c, d))
    if abs(expected) >= 1e-30 * max(1, largest):
      sizes = np.abs([z, a, b, c, d])
      error = np.abs(grads - expected_grads).max(axis=1) * sizes
      assert np.all(error <= rtol * scale + atol * sizes), (grads, expected_grads)
  if dtype == jnp.float32 and abs(expected) < 1e37:  # the complex form, likewise
    complex_out = complex(mj.mobius_transform(*(jnp.complex64(x) for x in values), eps=eps))
    assert abs(complex_out - expected) <= rtol * scale + atol, (complex_out, expected)


def test_pair_form_at_1e30_is_finite_with_finite_gradients():
  # Before: |c z + d|² overflowed, and f(1e30) for (2z + 1) / (z + 1) was NaN, as its gradients.
  one, two = (jnp.float32(1), jnp.float32(0)), (jnp.float32(2), jnp.float32(0))
  for eps in EPSILONS:
    (_, (re, im)), grads = OURS[eps]((jnp.float32(1e30), jnp.float32(0)), (two, one, one, one))
    np.testing.assert_allclose([re, im], [2, 0], rtol=1e-6)
    assert all(np.isfinite(g) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("offset, order", [(0.0, 1), (3e-3 - 2e-3j, 2), (0.05j, 2), (2 + 1j, 2)])
def test_pair_form_gradients_match_finite_differences_near_and_far_from_the_pole(offset, order):
  # float64: on the pole, within √ε = 0.01 of it, and far away. On the pole itself the third
  # derivatives (~ε^-1.5) make second-order finite differences useless at any step.
  with jax.enable_x64(True):
    z = _pair(jnp.complex128(POLE + offset), jnp.float64)
    coeffs = [_pair(jnp.complex128(x), jnp.float64) for x in POLE_MAP]
    f = functools.partial(mj.mobius_transform_pair, eps=1e-4)
    check_grads(f, (z, *coeffs), order=order, modes=("fwd", "rev"), eps=1e-6)
