"""Properties of the pure Möbius-map functions."""

import cmath

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

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
  z = jax.random.normal(jax.random.key(0), (2, 64))
  coeffs = [_pair(jnp.complex64(x)) for x in POLE_MAP]
  full = mj.mobius_transform_pair((z[0], z[1]), *coeffs, eps=1e-6)
  half = mj.mobius_transform_pair(
    (z[0].astype(jnp.bfloat16), z[1].astype(jnp.bfloat16)),
    *[(re.astype(jnp.bfloat16), im.astype(jnp.bfloat16)) for re, im in coeffs],
    eps=1e-6,
  )
  scale = np.abs(np.asarray(full)).max()
  np.testing.assert_allclose(np.asarray(half, np.float32), np.asarray(full), atol=0.05 * scale)


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
