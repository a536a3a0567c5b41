"""Vanilla and Möbius attention: fused versus reference paths, masks, dropout, sharding."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import mobius_jax as mj

B, T, N, H = 2, 6, 3, 8
C = H // 2
# Second sequence has two padding tokens.
VALID = jnp.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
HIGHEST = jax.lax.Precision.HIGHEST
TOL = {"rtol": 1e-5, "atol": 1e-5}


def normal(seed, *shape):
  return jax.random.normal(jax.random.key(seed), shape)


def qkv(dims, seed=0):
  return [normal(seed + i, B, T, N, dims) for i in range(3)]


def complex_qkv(seed=0):
  """Complex queries, keys, values as (re, im) pairs of [B, T, N, C] arrays."""
  parts = qkv(C, seed) + qkv(C, seed + 3)
  return [(parts[i], parts[i + 3]) for i in range(3)]


def loss_fn(attention, pairs=False):
  """Sum of squares of the outputs at real tokens, as a function of (q, k, v)."""
  weight = VALID[:, :, None, None]

  def loss(*args):
    out = attention(*args)
    parts = out if pairs else (out,)
    return sum(jnp.sum(weight * p**2) for p in parts)

  return loss


def value_and_grads(attention, args, pairs=False):
  return jax.jit(jax.value_and_grad(loss_fn(attention, pairs), argnums=(0, 1, 2)))(*args)


# ------------------------------------------------------------------------------------ vanilla


def test_fused_and_einsum_vanilla_paths_agree_with_mask_and_bias():
  bias = normal(9, 1, N, T, T)
  mask = mj.padding_mask(VALID)
  fused = functools.partial(mj.dot_product_attention, bias=bias, mask=mask)
  einsum = functools.partial(
    mj.dot_product_attention, bias=bias, mask=mask, implementation="einsum", precision=HIGHEST
  )
  with jax.default_matmul_precision("highest"):
    chex.assert_trees_all_close(
      value_and_grads(fused, qkv(H)), value_and_grads(einsum, qkv(H)), **TOL
    )


def test_vanilla_matches_the_softmax_formula():
  q, k, v = (np.asarray(x, np.float64) for x in qkv(H))
  logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(H)
  logits = np.where(np.asarray(VALID)[:, None, None, :] > 0, logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  expected = np.einsum("bnts,bsnh->btnh", weights, v)
  for implementation in (None, "einsum"):
    out = mj.dot_product_attention(
      *qkv(H), mask=mj.padding_mask(VALID), implementation=implementation
    )
    np.testing.assert_allclose(out, expected, **TOL)


def test_padded_keys_do_not_change_the_output():
  q, k, v = qkv(H)
  pad = (VALID == 0)[:, :, None, None]
  changed = [jnp.where(pad, x + 100.0, x) for x in (k, v)]
  mask = mj.padding_mask(VALID)
  np.testing.assert_allclose(
    mj.dot_product_attention(q, k, v, mask=mask),
    mj.dot_product_attention(q, *changed, mask=mask),
    **TOL,
  )


def test_dropout_needs_a_key_and_scales_the_kept_weights():
  with pytest.raises(ValueError, match="dropout_rng"):
    mj.dot_product_attention(*qkv(H), dropout_rate=0.1)
  logits = jnp.zeros((4, 2, 64, 64))  # uniform weights 1/64
  weights = mj.attention_weights(logits, dropout_rate=0.25, dropout_rng=jax.random.key(0))
  kept = np.asarray(weights) > 0
  assert abs(kept.mean() - 0.75) < 0.01
  np.testing.assert_allclose(np.asarray(weights)[kept], 1 / 64 / 0.75, rtol=1e-6)
  out = mj.dot_product_attention(*qkv(H), dropout_rate=0.5, dropout_rng=jax.random.key(1))
  assert not np.allclose(out, mj.dot_product_attention(*qkv(H)))


def test_bad_choices_raise_clear_errors():
  with pytest.raises(ValueError, match=r"implementation='flash'.*expected one of"):
    mj.dot_product_attention(*qkv(H), implementation="flash")
  with pytest.raises(ValueError, match="supports neither attention dropout"):
    mj.dot_product_attention(
      *qkv(H), implementation="xla", dropout_rate=0.1, dropout_rng=jax.random.key(0)
    )
  with pytest.raises(ValueError, match=r"score='cosine'.*expected one of"):
    mj.mobius_dot_product_attention(*complex_qkv(), score="cosine")


# ------------------------------------------------------------------------------------- Möbius


@pytest.mark.parametrize("score", mj.SCORE_MODES)
def test_fused_and_reference_mobius_paths_agree(score):
  """Outputs and gradients, with a padding mask, at HIGHEST precision."""
  mask = mj.padding_mask(VALID)
  bias = normal(9, 1, N, T, T)
  args = complex_qkv()

  def fused(q, k, v):
    return mj.mobius_dot_product_attention(q, k, v, score=score, mask=mask, bias=bias)

  def reference(q, k, v):
    out = mj.mobius_attention_reference(
      *(jax.lax.complex(*x) for x in (q, k, v)),
      score=score,
      mask=mask,
      bias=bias,
      precision=HIGHEST,
    )
    return jnp.real(out), jnp.imag(out)

  with jax.default_matmul_precision("highest"):
    chex.assert_trees_all_close(
      value_and_grads(fused, args, pairs=True),
      value_and_grads(reference, args, pairs=True),
      **TOL,
    )


def test_magnitude_score_gradients_match_finite_differences():
  # float64 (check_grads is unreliable in float32). |q · conj(k)| is smooth except where a score
  # is 0, which random inputs avoid; the third key is padding.
  with jax.enable_x64(True):
    q, k, v = jax.tree.map(lambda x: np.float64(x[:1, :3, :2]), complex_qkv())  # [1, 3, 2, C]
    mask = mj.padding_mask(jnp.array([[1, 1, 0]]))

    @jax.jit
    def logits(q, k):
      return mj.mobius_attention_logits(q, k, score="magnitude")

    @jax.jit
    def attention(q, k, v):
      return mj.mobius_dot_product_attention(q, k, v, score="magnitude", mask=mask)

    assert logits(q, k).dtype == jnp.float64
    check_grads(logits, (q, k), order=1, modes=("fwd", "rev"))
    check_grads(attention, (q, k, v), order=1, modes=("fwd", "rev"))


def test_hermitian_scores_are_real_parts_of_complex_products():
  # With real queries and keys the hermitian score is the real dot product, scaled 1/√(2C).
  q, k, v = complex_qkv()
  zero = jnp.zeros_like(q[0])
  out = mj.mobius_dot_product_attention((q[0], zero), (k[0], zero), v)
  expected = [mj.dot_product_attention(q[0], k[0], part, scale=(2 * C) ** -0.5) for part in v]
  chex.assert_trees_all_close(out, tuple(expected), **TOL)


def test_mobius_attention_runs_in_bfloat16_close_to_float32():
  args = complex_qkv()
  half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), args)
  mask = mj.padding_mask(VALID)
  for score in mj.SCORE_MODES:
    out = mj.mobius_dot_product_attention(*half, score=score, mask=mask)
    assert out[0].dtype == jnp.bfloat16
    full = mj.mobius_dot_product_attention(*args, score=score, mask=mask)
    chex.assert_trees_all_close(
      jax.tree.map(lambda x: x.astype(jnp.float32), out), full, atol=0.05, rtol=0.05
    )


def test_mobius_dropout_is_applied_to_the_weights():
  args = complex_qkv()
  out = mj.mobius_dot_product_attention(*args, dropout_rate=0.5, dropout_rng=jax.random.key(0))
  assert not np.allclose(out[0], mj.mobius_dot_product_attention(*args)[0])


def test_sharded_inputs_give_the_same_result():
  assert jax.device_count() == 8, "conftest.py sets up 8 fake CPU devices"
  mesh = jax.make_mesh((2, 4), ("data", "tensor"))
  sharding = NamedSharding(mesh, P("data", None, "tensor", None))  # batch and heads split
  args = [normal(i, 4, 16, 4, 8) for i in range(6)]
  pairs = [(args[i], args[i + 3]) for i in range(3)]
  attention = jax.jit(mj.mobius_dot_product_attention)
  sharded = jax.device_put(pairs, sharding)
  out = attention(*sharded)
  assert out[0].sharding.is_equivalent_to(sharding, 4)
  chex.assert_trees_all_close(out, attention(*pairs), **TOL)
