"""`mobius_jax.nnx`: the NNX layers and models against their linen modules.

Same parameters give the same outputs (deterministic, and with dropout under the same key), the
parameter trees convert both ways unchanged, and a step of `nnx.Optimizer` is the linen step.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import mobius_jax.nnx as mnnx
from mobius_jax import layers, models
from mobius_jax.layers import LayerConfig
from mobius_jax.models import ModelConfig
from mobius_jax.sharding import DEFAULT_RULES, EMBED, HEADS, make_mesh

IDS = jnp.array([[5, 7, 9, 11, 13, 3], [4, 6, 8, 10, 12, 14]])
MASK = jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
TYPES = jnp.array([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
INPUTS = {"attention_mask": MASK, "token_type_ids": TYPES}


def tiny(model, **overrides):
  return ModelConfig.preset(f"{model}-tiny", vocab_size=64, **overrides)


def unboxed_init(module, *inputs):
  return nn.meta.unbox(jax.jit(module.init)(jax.random.key(1), *inputs))["params"]


def assert_trees_equal(actual, expected, atol=0.0):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=0, atol=atol), actual, expected)


def test_every_linen_module_has_its_nnx_version():
  for package in (layers, models):
    for name in package.__all__:
      linen_type = getattr(package, name)
      if isinstance(linen_type, type) and issubclass(linen_type, nn.Module):
        assert getattr(mnnx, name).linen_type is linen_type


# --------------------------------------------------------------------------------- models

MODELS = [
  pytest.param("MaskedLM", "mobius_bert", (), id="MaskedLM-mobius_bert"),
  pytest.param("Transformer", "bert", (), id="Transformer-bert"),
  pytest.param("SequenceClassifier", "mobius_roformer", (3,), id="classifier-mobius_roformer"),
]


@pytest.mark.parametrize(("name", "preset", "args"), MODELS)
def test_model_equals_the_linen_model_given_its_params(name, preset, args):
  config = tiny(preset, num_layers=1)
  linen = getattr(models, name)(config, *args)
  model = getattr(mnnx, name)(config, *args, rngs=nnx.Rngs(0))
  params = unboxed_init(linen, IDS)
  own = mnnx.linen_params(model)  # created at construction, in the linen tree
  assert jax.tree.map(jnp.shape, own) == jax.tree.map(jnp.shape, params)
  pairs = zip(jax.tree.leaves(own), jax.tree.leaves(params), strict=True)
  assert not all(np.array_equal(a, b) for a, b in pairs)  # its own draw, not the linen one

  mnnx.load_linen_params(model, params)
  assert_trees_equal(mnnx.linen_params(model), params)
  deterministic = nnx.jit(lambda m: m(IDS, **INPUTS))(model)
  assert_trees_equal(deterministic, jax.jit(linen.apply)({"params": params}, IDS, **INPUTS), 1e-6)

  key = nnx.Rngs(dropout=7).dropout()  # the key a call with these rngs draws
  dropout = {"deterministic": False, **INPUTS}
  dropped = nnx.jit(lambda m, rngs: m(IDS, rngs=rngs, **dropout))(model, nnx.Rngs(dropout=7))
  apply = jax.jit(lambda p, k: linen.apply(p, IDS, rngs={"dropout": k}, **dropout))
  assert_trees_equal(dropped, apply({"params": params}, key), 1e-6)
  assert not np.allclose(jax.tree.leaves(dropped)[0], jax.tree.leaves(deterministic)[0])


def test_dropout_draws_from_the_module_rngs_which_split_and_merge_keep():
  model = mnnx.MaskedLM(tiny("mobius_bert", num_layers=1), rngs=nnx.Rngs(0, dropout=1))
  call = nnx.jit(lambda m: m(IDS, deterministic=False))
  copy = nnx.merge(*nnx.split(model), copy=True)  # the same weights and RNG state, copied
  first = call(model)
  np.testing.assert_array_equal(call(copy), first)
  assert not np.allclose(call(model), first)  # the stream moved on: a fresh key


def test_one_optimizer_step_is_the_linen_step_and_lowers_the_loss():
  config = tiny("mobius_bert", num_layers=1, hidden_dropout=0.0, attention_dropout=0.0)
  model = mnnx.MaskedLM(config, rngs=nnx.Rngs(0))
  params = mnnx.linen_params(model)
  tx = optax.sgd(0.1)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  def loss_of(logits):
    return optax.softmax_cross_entropy_with_integer_labels(logits, IDS).mean()

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: loss_of(m(IDS, **INPUTS)))(model)
    optimizer.update(model, grads)
    return loss

  loss = step(model, optimizer)
  linen = models.MaskedLM(config)
  linen_step = jax.jit(jax.value_and_grad(lambda p: loss_of(linen.apply(p, IDS, **INPUTS))))
  expected_loss, grads = linen_step({"params": params})
  updates, _ = tx.update(grads["params"], tx.init(params), params)
  np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
  assert_trees_equal(mnnx.linen_params(model), optax.apply_updates(params, updates), 1e-6)
  assert linen_step({"params": mnnx.linen_params(model)})[0] < loss


def test_parameters_keep_their_logical_axis_names():
  config = tiny("mobius_roformer")
  model = nnx.eval_shape(lambda: mnnx.MaskedLM(config, rngs=nnx.Rngs(0)))
  specs = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(model, nnx.Param)))
  linen = models.MaskedLM(config)
  expected = nn.get_partition_spec(jax.eval_shape(linen.init, jax.random.key(0), IDS))["params"]
  assert specs == expected


def test_the_sharding_recipe_of_the_docstring_shards_as_the_linen_model():
  config = tiny("mobius_bert", num_layers=1)
  model = mnnx.MaskedLM(config, rngs=nnx.Rngs(0))
  call = nnx.jit(lambda m: m(IDS))
  unsharded = call(model)
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  state = nnx.state(model, nnx.Param)
  shardings = nn.logical_to_mesh_sharding(nnx.get_partition_spec(state), mesh, DEFAULT_RULES)
  nnx.update(model, jax.device_put(state, shardings))
  abstract = jax.eval_shape(models.MaskedLM(config).init, jax.random.key(0), IDS)
  linen = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, DEFAULT_RULES)
  assert jax.tree.map(lambda x: x.sharding, mnnx.linen_params(model)) == linen["params"]
  np.testing.assert_allclose(call(model), unsharded, atol=1e-6)


# --------------------------------------------------------------------------------- layers

CONFIG = LayerConfig(hidden_size=16, num_heads=2, intermediate_size=32, rotary=True)
X = jax.random.normal(jax.random.key(2), (2, 6, 16))
Z = (X, jax.random.normal(jax.random.key(3), (2, 6, 16)))
LAYERS = [
  ("ComplexDense", (8, (EMBED, HEADS)), Z),
  ("ComplexScale", (HEADS,), Z),
  ("MobiusMap", (), Z),
  ("FeedForward", (CONFIG,), X),
  ("SelfAttention", (CONFIG,), X),
  ("MobiusSelfAttention", (CONFIG,), Z),
  ("EncoderLayer", (CONFIG,), X),
  ("ComplexEncoderLayer", (CONFIG,), Z),
]
WITH_DROPOUT = {"SelfAttention", "MobiusSelfAttention", "EncoderLayer", "ComplexEncoderLayer"}


@pytest.mark.parametrize(("name", "args", "x"), LAYERS, ids=[case[0] for case in LAYERS])
def test_layer_equals_the_linen_layer_given_its_params(name, args, x):
  linen = getattr(layers, name)(*args)
  layer = getattr(mnnx, name)(*args, rngs=nnx.Rngs(0)).lazy_init(x)
  params = unboxed_init(linen, x)
  mnnx.load_linen_params(layer, params)
  assert_trees_equal(mnnx.linen_params(layer), params)
  assert_trees_equal(layer(x), linen.apply({"params": params}, x), 1e-6)
  if name in WITH_DROPOUT:
    key = nnx.Rngs(dropout=5).dropout()
    dropped = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=5))
    expected = linen.apply({"params": params}, x, deterministic=False, rngs={"dropout": key})
    assert_trees_equal(dropped, expected, 1e-6)


def test_load_linen_params_names_what_does_not_fit():
  layer = mnnx.MobiusMap(rngs=nnx.Rngs(0)).lazy_init(Z)
  with pytest.raises(ValueError, match=r"coefficients: \(4, 2, 8\), expected \(4, 2, 16\)"):
    mnnx.load_linen_params(layer, {"coefficients": jnp.zeros((4, 2, 8))})
  with pytest.raises(ValueError, match=r"scale: \(2,\), expected none"):
    mnnx.load_linen_params(layer, {"coefficients": jnp.zeros((4, 2, 16)), "scale": jnp.ones(2)})
