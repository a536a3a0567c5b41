"""Encoders and task models: layouts, invariances, embeddings, gradients, dtypes, sharding.

The configs and presets are tested in test_config.py, the parameter counts in test_params.py."""

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from mobius_jax.layers import ComplexEncoderLayer, LayerConfig, MobiusSelfAttention
from mobius_jax.models import (
  MOBIUS_EMBEDDINGS,
  MaskedLM,
  ModelConfig,
  SequenceClassifier,
  Transformer,
)
from mobius_jax.sharding import DEFAULT_RULES, make_mesh, use_mesh

PRESETS = ["bert", "roformer", "mobius_bert", "mobius_roformer"]
SPLIT = {"mobius_embeddings": "split"}
# (preset, overrides): every preset, and the Möbius ones with the paper's embedding reading.
MODELS = [pytest.param(p, {}, id=p) for p in PRESETS] + [
  pytest.param(p, SPLIT, id=f"{p}-split") for p in ("mobius_bert", "mobius_roformer")
]
IDS = jnp.array([[5, 7, 9, 11, 13, 3], [4, 6, 8, 10, 12, 14]])
MASK = jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
TYPES = jnp.array([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])


def tiny(model, **overrides):
  """A tiny preset with a small vocabulary (divisible by the mesh's tensor axis)."""
  return ModelConfig.preset(f"{model}-tiny", vocab_size=64, **overrides)


def init(model, config, seed=0):
  return nn.meta.unbox(model.init(jax.random.key(seed), IDS))["params"]


def mlm_logits(config, params, ids=IDS, mask=MASK, **kwargs):
  return MaskedLM(config).apply({"params": params}, ids, attention_mask=mask, **kwargs)


# ----------------------------------------------------------------------------------- layouts

LAYOUTS = {
  "none": "VVVVV",
  "framed": "MVVVM",
  "top": "VVVVM",
  "bottom": "MVVVV",
  "stacked": "MMVVV",
  "alternating": "MVMVM",
  "all": "MMMMM",
  "mvvmv": "MVVMV",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_build_the_expected_layer_kinds(layout):
  config = tiny("bert", num_layers=5, layout=layout)
  assert config.layer_kinds == LAYOUTS[layout]
  shapes = jax.eval_shape(Transformer(config).init, jax.random.key(0), IDS)
  layers = nn.meta.unbox(shapes)["params"]["encoder"]
  kinds = "".join("M" if "mlp_real" in layers[f"layer_{i}"] else "V" for i in range(5))
  assert kinds == LAYOUTS[layout]


@pytest.mark.parametrize("embeddings", MOBIUS_EMBEDDINGS)
def test_mobius_model_with_layout_none_equals_the_baseline_exactly(embeddings):
  for family in ("bert", "roformer"):
    baseline = tiny(family)
    mobius = tiny(
      f"mobius_{family}",
      layout="none",
      num_mobius_heads=1,
      mobius_score="bilinear",
      mobius_embeddings=embeddings,
    )
    params = init(MaskedLM(baseline), baseline)
    np.testing.assert_array_equal(mlm_logits(mobius, params), mlm_logits(baseline, params))


# ------------------------------------------------------------------------------ invariances


@pytest.mark.parametrize("preset, overrides", MODELS)
def test_outputs_at_real_tokens_do_not_change_when_padding_is_added(preset, overrides):
  config = tiny(preset, **overrides)
  params = init(MaskedLM(config), config)
  short = mlm_logits(config, params, IDS[:, :4], MASK[:, :4] * 0 + 1)
  padded_ids = jnp.concatenate([IDS[:, :4], jnp.zeros((2, 5), jnp.int32)], axis=1)
  padded_mask = jnp.concatenate([jnp.ones((2, 4)), jnp.zeros((2, 5))], axis=1)
  padded = mlm_logits(config, params, padded_ids, padded_mask)
  np.testing.assert_allclose(padded[:, :4], short, atol=1e-5)


@pytest.mark.parametrize(
  "preset, overrides",
  [
    ("bert", {}),
    ("roformer", {}),
    ("mobius_bert", {}),  # framed: the last layer is a Möbius layer
    ("mobius_roformer", {"layout": "bottom", "mobius_query": "linear"}),
    # A Möbius last layer with rotary positions: after a Möbius layer (framed, "MM") and after
    # a vanilla one (top, "VM").
    ("mobius_roformer", {}),
    ("mobius_roformer", {"layout": "top"}),
  ],
)
def test_logits_at_masked_positions_are_the_full_logits_rows(preset, overrides):
  # The last layer then computes its output at the masked tokens only: same rows, less work.
  config = tiny(preset, **overrides)
  params = init(MaskedLM(config), config)
  masked = jnp.array([[3, 0, 1], [5, 2, 2]])
  positions = jnp.arange(IDS.shape[1]) + jnp.array([[0], [9]])  # [B, L] position ids
  full = mlm_logits(config, params, position_ids=positions)
  rows = mlm_logits(config, params, position_ids=positions, masked_positions=masked)
  chex.assert_shape(rows, (2, 3, config.vocab_size))
  np.testing.assert_allclose(rows, jnp.take_along_axis(full, masked[..., None], axis=1), atol=1e-5)


def test_output_indices_refuse_the_pooler():
  config = tiny("bert")
  with pytest.raises(ValueError, match="with_pooler=False"):
    Transformer(config).init(jax.random.key(0), IDS, output_indices=jnp.zeros((2, 1), jnp.int32))


def test_roformer_outputs_do_not_depend_on_absolute_positions():
  config = tiny("roformer")
  params = init(MaskedLM(config), config)
  positions = jnp.arange(IDS.shape[1])
  np.testing.assert_allclose(
    mlm_logits(config, params, position_ids=positions + 17),
    mlm_logits(config, params, position_ids=positions),
    atol=1e-4,
  )


def test_mobius_roformer_attention_scores_depend_on_relative_positions_only():
  config = LayerConfig(hidden_size=32, num_heads=4, intermediate_size=64, rotary=True)
  layer = MobiusSelfAttention(config)
  x = tuple(jax.random.normal(jax.random.key(i), (2, 6, 32)) for i in range(2))
  params = layer.init(jax.random.key(2), x)

  def weights(positions):
    _, state = layer.apply(params, x, positions=positions, mutable="intermediates")
    return state["intermediates"]["attention_weights"][0]

  positions = jnp.arange(6)
  chex.assert_trees_all_close(weights(positions + 11), weights(positions), atol=1e-5)
  # The rotation matters: permuting positions changes the scores.
  assert not np.allclose(weights(positions[::-1]), weights(positions), atol=1e-3)


# --------------------------------------------------------------------------------- embeddings


def first_mobius_input(config, params, **kwargs):
  """The (real, imaginary) channels `[B, L, D]` that the first Möbius layer is called with."""
  seen = []

  def record(call, args, call_kwargs, context):
    if isinstance(context.module, ComplexEncoderLayer) and context.method_name == "__call__":
      seen.append(args[0])
    return call(*args, **call_kwargs)

  with nn.intercept_methods(record):
    mlm_logits(config, params, **kwargs)
  return seen[0]


def rms(x):
  return float(jnp.sqrt(jnp.mean(jnp.square(x))))


@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_split_embeddings_start_the_first_mobius_layer_on_channels_of_one_scale(family):
  # Real / imaginary RMS at initialisation. "stream": BERT's imaginary channel is the raw
  # position rows (std 0.02), 50× below the LayerNorm'd real channel; RoFormer's sinusoids
  # have RMS 1/√2. "split" normalises both: RMS 1 each (10 %, not 2×, so that RoFormer's √2
  # fails it).
  ratios = {}
  for embeddings in MOBIUS_EMBEDDINGS:
    config = tiny(f"mobius_{family}", mobius_embeddings=embeddings)
    real, imag = first_mobius_input(config, init(MaskedLM(config), config))
    ratios[embeddings] = rms(real) / rms(imag)
  assert 1 / 1.1 < ratios["split"] < 1.1, ratios
  if family == "bert":
    assert ratios["stream"] >= 10, ratios
  else:
    np.testing.assert_allclose(ratios["stream"], np.sqrt(2), rtol=0.01)


def test_split_embeddings_drop_out_each_channel_independently():
  config = tiny("mobius_bert", mobius_embeddings="split", hidden_dropout=0.5)
  params = init(MaskedLM(config), config)
  real, imag = first_mobius_input(
    config, params, deterministic=False, rngs={"dropout": jax.random.key(0)}
  )
  dropped = [np.asarray(channel) == 0 for channel in (real, imag)]
  for mask in dropped:
    assert 0.4 < mask.mean() < 0.6
    assert np.mean(mask[0] != mask[1]) > 0.3  # a mask per example, not one broadcast
  assert np.mean(dropped[0] != dropped[1]) > 0.3


@pytest.mark.parametrize("layout", ["none", "top"])
def test_split_embeddings_leave_a_model_with_a_vanilla_first_layer_as_it_was(layout):
  # A vanilla layer 0 reads the baseline's embeddings; the top Möbius layer's imaginary channel
  # stays the embeddings' output. Same parameters, same logits.
  for family in ("bert", "roformer"):
    stream = tiny(f"mobius_{family}", layout=layout)
    split = dataclasses.replace(stream, mobius_embeddings="split")
    params = init(MaskedLM(stream), stream)
    assert jax.tree.structure(init(MaskedLM(split), split)) == jax.tree.structure(params)
    np.testing.assert_array_equal(mlm_logits(split, params), mlm_logits(stream, params))


# ---------------------------------------------------------------------- training essentials


@pytest.mark.parametrize("preset, overrides", MODELS)
def test_jitted_gradients_are_finite_and_dropout_needs_a_key(preset, overrides):
  config = tiny(preset, **overrides)
  model = SequenceClassifier(config, num_labels=3)
  params = init(model, config)

  @jax.jit
  def loss_and_grads(params, rng):
    def loss_fn(p):
      logits = model.apply(
        {"params": p},
        IDS,
        attention_mask=MASK,
        token_type_ids=TYPES,
        deterministic=False,
        rngs={"dropout": rng},
      )
      return jnp.mean(logits**2)

    return jax.value_and_grad(loss_fn)(params)

  loss, grads = loss_and_grads(params, jax.random.key(1))
  assert np.isfinite(loss)
  largest = {
    "/".join(path): np.abs(g).max() for path, g in traverse_util.flatten_dict(grads).items()
  }
  assert all(np.isfinite(g) for g in largest.values()), largest
  # Every parameter gets a gradient, but the key biases of attention without rotary positions:
  # a bias b adds q · b to all of a query's scores alike, which the softmax ignores (they see
  # float32 noise, about 1e-10 of the largest gradient). Rotated by each key's position, it
  # counts. The other gradients are 1e-5 of the largest or more.
  top = max(largest.values())
  zero = {name for name in largest if "key/bias" in name and not config.rotary}
  assert zero or config.rotary
  assert all(largest[name] > 1e-7 * top for name in set(largest) - zero), largest
  assert all(largest[name] < 1e-7 * top for name in zero), largest
  other, _ = loss_and_grads(params, jax.random.key(2))
  assert loss != other  # dropout is on
  with pytest.raises(Exception, match="dropout"):
    model.apply({"params": params}, IDS, deterministic=False)


def test_every_mobius_coefficient_gets_a_gradient_from_the_masked_lm_loss():
  # a, b, c and d, real and imaginary, of every query dimension of every Möbius head: a map cut
  # off from the loss, or a dimension the query drops, leaves zeros. Both layers are Möbius
  # layers; the loss is at 2 masked positions, where the last layer computes its queries.
  config = tiny("mobius_bert", layout="MM")
  model = MaskedLM(config)
  params = init(model, config)
  positions = jnp.array([[1, 3], [0, 5]])

  def loss_fn(p):
    logits = model.apply({"params": p}, IDS, attention_mask=MASK, masked_positions=positions)
    labels = jnp.take_along_axis(IDS, positions, axis=1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  grads = jax.jit(jax.grad(loss_fn))(params)["backbone"]["encoder"]
  for layer in ("layer_0", "layer_1"):
    g = grads[layer]["attention"]["query_mobius"]["coefficients"]
    assert g.shape == (4, 2, config.mobius_heads * config.head_dim)
    assert np.all(np.isfinite(g)) and np.all(g != 0), (layer, np.argwhere(g == 0))


@pytest.mark.parametrize("preset, overrides", MODELS)
def test_bfloat16_forward_pass_stays_close_to_float32(preset, overrides):
  config = tiny(preset, **overrides)
  params = init(MaskedLM(config), config)
  full = mlm_logits(config, params)
  half = mlm_logits(dataclasses.replace(config, dtype="bfloat16"), params)
  assert half.dtype == jnp.bfloat16
  scale = float(jnp.std(full))
  np.testing.assert_allclose(np.asarray(half, np.float32), full, atol=0.15 * scale)


def _matmul_dtypes(jaxpr, found):
  """(input dtypes, name stack) of every dot_general in `jaxpr` and its sub-jaxprs."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      dtypes = tuple(str(v.aval.dtype) for v in eqn.invars)
      found.append((dtypes, str(eqn.source_info.name_stack)))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      _matmul_dtypes(sub, found)
  return found


@pytest.mark.parametrize("preset", ["bert", "mobius_roformer"])
def test_bfloat16_training_runs_its_matmuls_in_bfloat16(preset):
  # No float32 upcast in a bfloat16 train step: the only float32 operands are the score
  # gradients in the attention's backward (its scores and softmax are float32 on purpose, as
  # in jax.nn.dot_product_attention's "xla" path).
  config = tiny(preset, dtype="bfloat16")
  model = MaskedLM(config)
  params = init(model, config)

  def loss(p):
    logits = model.apply(
      {"params": p},
      IDS,
      masked_positions=IDS[:, :2] % 6,
      deterministic=False,
      rngs={"dropout": jax.random.key(0)},
    )
    return logits.astype(jnp.float32).sum()

  matmuls = _matmul_dtypes(jax.make_jaxpr(jax.grad(loss))(params).jaxpr, [])
  assert len(matmuls) > 20
  upcast = [name for dtypes, name in matmuls if "float32" in dtypes]
  assert upcast, "expected the attention's score gradients in float32"
  assert all(name.endswith("btnh,bsnh->bnts") for name in upcast), upcast


@pytest.mark.parametrize(
  "overrides",
  [
    dict(num_mobius_heads=0),
    dict(num_mobius_heads=2, mobius_query="linear"),
    dict(mobius_key_value="elementwise", mobius_score="magnitude"),
    dict(mobius_init="unitary", attention_implementation="einsum"),
  ],
)
def test_mobius_variants_run(overrides):
  config = tiny("mobius_bert", **overrides)
  params = init(MaskedLM(config), config)
  assert np.all(np.isfinite(mlm_logits(config, params)))


# --------------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("preset, overrides", MODELS)
def test_every_parameter_has_logical_axis_names(preset, overrides):
  # RoFormer with E < D: `norm` at width E, the split embeddings' `position_norm` at D.
  config = tiny(preset, embedding_size=64 if "roformer" in preset else None, **overrides)
  for model in (MaskedLM(config), SequenceClassifier(config, num_labels=2)):
    variables = jax.eval_shape(model.init, jax.random.key(0), IDS)
    leaves = jax.tree.leaves(variables, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    for leaf in leaves:
      assert isinstance(leaf, nn.Partitioned), leaf
      assert len(leaf.names) == leaf.value.ndim and all(leaf.names), leaf


def test_model_initialises_sharded_on_the_8_device_mesh():
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  config = tiny("mobius_bert")
  model = MaskedLM(config)
  abstract = jax.eval_shape(model.init, jax.random.key(0), IDS)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, DEFAULT_RULES)
  variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), IDS)
  table = variables["params"]["backbone"]["embeddings"]["word_embeddings"]["embedding"]
  assert table.value.sharding.spec == P("tensor", "fsdp")
  coefficients = variables["params"]["backbone"]["encoder"]["layer_0"]["attention"]
  assert coefficients["query_mobius"]["coefficients"].value.sharding.spec == P(None, None, "tensor")
  with use_mesh(mesh):
    sharded = jax.jit(model.apply)(variables, IDS)
  unsharded = model.apply(jax.device_get(nn.meta.unbox(variables)), IDS)
  np.testing.assert_allclose(sharded, unsharded, atol=1e-5)
