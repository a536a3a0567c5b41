"""Rotary embeddings (real and complex) and the sinusoidal encoding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mobius_jax as mj

L, N = 12, 2


def normal(seed, *shape):
  return jax.random.normal(jax.random.key(seed), shape)


def test_complex_rope_scores_depend_only_on_relative_position():
  c = 4
  # The same complex query and key at every position: any dependence on m, n is the rotation's.
  q = tuple(jnp.broadcast_to(normal(s, 1, 1, N, c), (1, L, N, c)) for s in (0, 1))
  k = tuple(jnp.broadcast_to(normal(s, 1, 1, N, c), (1, L, N, c)) for s in (2, 3))
  q_rot, k_rot = mj.apply_complex_rope(q), mj.apply_complex_rope(k)
  # Re(q_m · conj(k_n)) summed over dimensions: [N, m, n].
  scores = jnp.einsum("mnc,knc->nmk", q_rot[0][0], k_rot[0][0]) + jnp.einsum(
    "mnc,knc->nmk", q_rot[1][0], k_rot[1][0]
  )
  for offset in range(-L + 1, L):
    diagonal = jnp.diagonal(scores, offset, axis1=1, axis2=2)  # all pairs with n − m = offset
    np.testing.assert_allclose(diagonal, diagonal[:, :1] * jnp.ones_like(diagonal), atol=1e-5)
  # …and the rotation does change them: the scores are not constant along rows.
  assert not np.allclose(scores[:, 0, 0], scores[:, 0, 5])


def test_complex_rope_is_multiplication_by_a_unit_phase():
  x = (normal(0, 2, L, N, 4), normal(1, 2, L, N, 4))
  positions = jnp.arange(L) * 3 + 5
  out = mj.apply_complex_rope(x, positions, base=100.0)
  theta = 100.0 ** (-np.arange(4) / 4)
  phase = np.exp(1j * positions[:, None, None] * theta)  # [L, 1, C]
  np.testing.assert_allclose(jax.lax.complex(*out), jax.lax.complex(*x) * phase, atol=1e-4)


def test_rope_is_roformers_interleaved_rotation():
  x = normal(0, 2, L, N, 8)
  positions = jnp.arange(L)
  theta = 10_000.0 ** (-np.arange(0, 8, 2) / 8)  # RoFormer: θ_j = 10000^(−2j/H)
  sin = np.repeat(np.sin(positions[:, None] * theta), 2, axis=-1)[:, None, :]  # [L, 1, H]
  cos = np.repeat(np.cos(positions[:, None] * theta), 2, axis=-1)[:, None, :]
  x_np = np.asarray(x)
  rotate_half = np.stack([-x_np[..., 1::2], x_np[..., ::2]], axis=-1).reshape(x_np.shape)
  np.testing.assert_allclose(mj.apply_rope(x), x_np * cos + rotate_half * sin, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
  q, k = normal(0, 1, L, N, 8), normal(1, 1, L, N, 8)
  positions = jnp.arange(L)[None]
  scores = jnp.einsum("blnh,bmnh->bnlm", mj.apply_rope(q, positions), mj.apply_rope(k, positions))
  shifted = jnp.einsum(
    "blnh,bmnh->bnlm", mj.apply_rope(q, positions + 7), mj.apply_rope(k, positions + 7)
  )
  np.testing.assert_allclose(scores, shifted, atol=1e-4)


def test_per_example_positions_broadcast():
  x = (normal(0, 2, L, N, 4), normal(1, 2, L, N, 4))
  positions = jnp.stack([jnp.arange(L), jnp.arange(L) + 3])
  out = mj.apply_complex_rope(x, positions)
  second = mj.apply_complex_rope((x[0][1:], x[1][1:]), positions[1])
  np.testing.assert_allclose(out[0][1:], second[0], atol=1e-6)
  assert mj.apply_rope(x[0], positions).shape == x[0].shape


def test_rope_keeps_bfloat16():
  x = normal(0, 1, L, N, 8).astype(jnp.bfloat16)
  assert mj.apply_rope(x).dtype == jnp.bfloat16
  out = mj.apply_complex_rope((x, x))
  assert out[0].dtype == out[1].dtype == jnp.bfloat16


def test_sinusoidal_encoding():
  enc = mj.sinusoidal_position_encoding(L, 6)
  assert enc.shape == (L, 6)
  np.testing.assert_allclose(enc[0], [0, 0, 0, 1, 1, 1])
  theta = 10_000.0 ** (-np.arange(0, 6, 2) / 6)
  np.testing.assert_allclose(
    enc[5], np.concatenate([np.sin(5 * theta), np.cos(5 * theta)]), atol=1e-6
  )


def test_odd_widths_are_rejected():
  with pytest.raises(ValueError, match="must be even"):
    mj.apply_rope(normal(0, 1, L, N, 7))
  with pytest.raises(ValueError, match="must be even"):
    mj.sinusoidal_position_encoding(L, 5)


def test_query_positions_follow_the_position_ids_of_the_chosen_tokens():
  indices = jnp.array([[2, 0], [1, 1]])
  np.testing.assert_array_equal(mj.query_positions(None, indices), indices)
  np.testing.assert_array_equal(mj.query_positions(jnp.arange(3) + 5, indices), indices + 5)
  per_row = jnp.array([[7, 8, 9], [0, 4, 2]])
  np.testing.assert_array_equal(mj.query_positions(per_row, indices), [[9, 7], [4, 4]])
  x = jnp.arange(2 * 3 * 2).reshape(2, 3, 2)
  np.testing.assert_array_equal(mj.take_tokens(x, indices), [[[4, 5], [0, 1]], [[8, 9], [8, 9]]])


def test_complex_rope_defaults_are_roformers_frequencies_and_positions():
  # With no positions and no base: dimension j of position m times e^{i m θ_j}, θ_j = 10⁴^(−j/C).
  c = 16  # complex dims: θ_j spans 1 … 10⁴^(−15/16)
  x = (normal(0, 2, L, N, c), normal(1, 2, L, N, c))
  re, im = mj.apply_complex_rope(x)
  m = np.arange(L)[:, None, None]
  theta = 10_000.0 ** (-np.arange(c) / c)
  expected = (np.asarray(x[0]) + 1j * np.asarray(x[1])) * np.exp(1j * m * theta)
  np.testing.assert_allclose(np.asarray(re) + 1j * np.asarray(im), expected, rtol=1e-4, atol=1e-4)
