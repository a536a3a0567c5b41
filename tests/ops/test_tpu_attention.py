"""Splash attention (`implementation="splash"`, `mobius_jax.ops.tpu_attention`): in Pallas
interpret mode on CPU against the complex64 definition (values and gradients, with padding),
inside `shard_map` on a mesh, in a model, its refusals; and compiled for a TPU topology (the
Mosaic kernel) where libtpu is installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import mobius_jax as mj
from mobius_jax.layers import LayerConfig
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.ops.tpu_attention import splash_attention
from mobius_jax.sharding import make_mesh, use_mesh

# Lengths and widths off the kernel's 128-blocks: queries, keys and head dims are padded.
B, T, N, C = 3, 40, 2, 16
# Row 0 all real, row 1 with padding, row 2 all padding (attends to all keys, as the mask does).
LENGTHS = jnp.array([T, 23, 0])
VALID = jnp.arange(T)[None, :] < LENGTHS[:, None]
TOL = {"rtol": 2e-5, "atol": 2e-5}


def normal(seed, *shape):
  return jax.random.normal(jax.random.key(seed), shape)


def complex_qkv(length=T):
  """Complex q, k, v as (re, im) pairs; the query `length` may differ from the keys'."""
  lengths = (length, T, T)
  return [(normal(2 * i, B, n, N, C), normal(2 * i + 1, B, n, N, C)) for i, n in enumerate(lengths)]


def mobius_splash(q, k, v):
  return mj.mobius_dot_product_attention(
    q, k, v, mask=mj.padding_mask(VALID), implementation="splash"
  )


def mobius_reference(q, k, v):
  as_complex = [(part[0] + 1j * part[1]).astype(jnp.complex64) for part in (q, k, v)]
  out = mj.mobius_attention_reference(
    *as_complex, mask=mj.padding_mask(VALID), precision=jax.lax.Precision.HIGHEST
  )
  return jnp.real(out), jnp.imag(out)


def weighted_loss(attention):
  """A loss of every output (padding positions too) with distinct weights per element."""

  def loss(q, k, v):
    out = attention(q, k, v)
    weights = normal(99, *out[0].shape)
    return sum(jnp.sum(weights * (i + 1) * part) for i, part in enumerate(out))

  return loss


@pytest.mark.parametrize("query_length", [T, 20])  # self-attention; the last layer's P queries
def test_mobius_matches_reference_with_padding(query_length):
  """Values and gradients of Möbius attention on the splash kernel equal the complex64
  definition, at every query (padding ones too) and in the all-padding row."""
  q, k, v = complex_qkv(query_length)
  out = jax.jit(mobius_splash)(q, k, v)
  expected = mobius_reference(q, k, v)
  for part, ref in zip(out, expected, strict=True):
    np.testing.assert_allclose(part, ref, **TOL)
  grads = jax.jit(jax.grad(weighted_loss(mobius_splash), argnums=(0, 1, 2)))(q, k, v)
  ref_grads = jax.grad(weighted_loss(mobius_reference), argnums=(0, 1, 2))(q, k, v)
  for got, ref in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_vanilla_matches_einsum_without_mask_and_in_bfloat16():
  q, k, v = (normal(i, 2, 128, N, 64) for i in range(3))
  expected = mj.dot_product_attention(q, k, v, implementation="einsum")
  got = mj.dot_product_attention(q, k, v, implementation="splash")
  np.testing.assert_allclose(got, expected, **TOL)
  low = [x.astype(jnp.bfloat16) for x in (q, k, v)]
  got = mj.dot_product_attention(*low, implementation="splash")
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), expected, atol=0.05)


def test_inside_shard_map_on_a_mesh():
  """On a 2 × 2 × 2 mesh the kernel runs per shard (batch over data × fsdp, heads over tensor):
  the same values and gradients as without a mesh."""
  mesh = make_mesh(2, 2, 2)
  q, k, v = (normal(i, 4, 40, 2, 32) for i in range(3))
  valid = jnp.arange(40)[None, :] < jnp.array([[40], [7], [30], [0]])

  def attention(q, k, v):
    return mj.dot_product_attention(q, k, v, mask=mj.padding_mask(valid), implementation="splash")

  def loss(q, k, v):
    return jnp.sum(attention(q, k, v) * normal(9, 4, 40, 2, 32))

  expected = jax.jit(attention)(q, k, v), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
  sharding = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor", None))
  with use_mesh(mesh):
    args = jax.device_put((q, k, v), sharding)
    got = jax.jit(attention)(*args), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)
    text = jax.jit(attention).lower(*args).as_text()
  assert "shard_map" in text or "sdy.manual_computation" in text
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(a, b, **TOL)


def test_model_logits_equal_the_default_attention():
  """A tiny MöbiusBERT with `attention_implementation="splash"`: the default's logits (its last
  layer attends from the masked positions only, a query length of its own)."""
  kwargs = {"vocab_size": 64, "attention_dropout": 0.0}
  ids = jax.random.randint(jax.random.key(0), (2, 24), 5, 64)
  mask = jnp.arange(24)[None, :] < jnp.array([[24], [17]])
  positions = jnp.array([[1, 5, 9, 20], [0, 3, 16, 2]])
  default = MaskedLM(ModelConfig.preset("mobius_bert-tiny", **kwargs))
  splash = MaskedLM(
    ModelConfig.preset("mobius_bert-tiny", attention_implementation="splash", **kwargs)
  )
  params = default.init(jax.random.key(1), ids)["params"]
  run = {"attention_mask": mask, "masked_positions": positions}
  expected = default.apply({"params": params}, ids, **run)
  got = jax.jit(lambda p: splash.apply({"params": p}, ids, **run))(params)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_refusals():
  q = k = v = normal(0, 1, 8, 1, 8)
  with pytest.raises(ValueError, match="attention dropout"):
    mj.dot_product_attention(
      q, k, v, implementation="splash", dropout_rate=0.1, dropout_rng=jax.random.key(0)
    )
  with pytest.raises(ValueError, match="a bias"):
    mj.dot_product_attention(q, k, v, bias=jnp.zeros((1, 1, 8, 8)), implementation="splash")
  with pytest.raises(ValueError, match=r"padding mask of shape \[B, 1, 1, S\]"):
    splash_attention(q, k, v, mask=jnp.ones((1, 1, 8, 8), bool))
  both_fields = r"attention_implementation='splash'.*attention_dropout=0\.1"
  with pytest.raises(ValueError, match=both_fields):
    LayerConfig(attention_implementation="splash", attention_dropout=0.1)
  LayerConfig(attention_implementation="splash", attention_dropout=0.0)  # the paper's recipe


def test_compiles_for_a_tpu_topology(monkeypatch):
  """The Mosaic kernel (not interpret mode) in the program the TPU compiler builds for a v5e
  2 × 2 slice, forward and backward, inside shard_map over the batch and the heads."""
  pytest.importorskip("libtpu")
  from jax.experimental import topologies

  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # beside other processes using libtpu
  devices = topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu").devices
  mesh = make_mesh(2, 1, 2, devices=list(devices))
  spec = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor", None))
  x = jax.ShapeDtypeStruct((4, 128, 2, 128), jnp.bfloat16, sharding=spec)
  valid = jax.ShapeDtypeStruct((4, 128), jnp.bool_, sharding=NamedSharding(mesh, P("data")))

  def loss(q, k, v, valid):
    out = mj.dot_product_attention(q, k, v, mask=mj.padding_mask(valid), implementation="splash")
    return jnp.sum(out.astype(jnp.float32) ** 2)

  with use_mesh(mesh):
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x, valid).compile()
  text = compiled.as_text()
  assert "tpu_custom_call" in text  # the Mosaic kernels
  assert compiled.cost_analysis()["flops"] > 0
