"""Parity with Hugging Face's BERT and RoFormer (PyTorch and Flax), conversion, upcycling.

HF models are built locally with random weights (no downloads). PyTorch tests skip where torch
is absent; Flax tests need transformers 4.57.6, the last release with Flax models.
"""

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from flax import traverse_util

from mobius_jax.layers import ComplexDense
from mobius_jax.models import MaskedLM, SequenceClassifier, Transformer
from mobius_jax.models import hf as convert

transformers = pytest.importorskip("transformers")

TOL = 1e-5
IDS = np.array([[2, 5, 9, 11, 7, 0, 0, 0], [3, 8, 1, 4, 6, 12, 10, 13]])
MASK = (IDS > 0).astype(np.int64)
TYPES = np.array([[0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])
NUM_LABELS = 3


def hf_config(family, embedding_size=None):
  kwargs = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    num_labels=NUM_LABELS,
  )
  if family == "roformer":
    return transformers.RoFormerConfig(embedding_size=embedding_size or 32, **kwargs)
  return transformers.BertConfig(**kwargs)


def randomised(shapes, seed=0):
  """Random values for every float entry: LayerNorm weights too, so that no swap goes unseen."""
  rng = np.random.default_rng(seed)
  return {k: (0.3 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}


# ------------------------------------------------------------------------ PyTorch reference


def torch_model(family, head, embedding_size=None):
  """A random HF PyTorch model and its state dict as numpy arrays."""
  torch = pytest.importorskip("torch")
  name = {"bert": "Bert", "roformer": "RoFormer"}[family]
  cls = {"backbone": "Model", "mlm": "ForMaskedLM", "classifier": "ForSequenceClassification"}
  model = getattr(transformers, name + cls[head])(hf_config(family, embedding_size)).eval()
  state = model.state_dict()
  floats = {
    k: tuple(v.shape)
    for k, v in state.items()
    if v.is_floating_point() and "embed_positions" not in k
  }
  new = randomised(floats)
  for k in list(new):  # Keep the tied MLM decoder tied.
    if k.endswith("predictions.decoder.weight"):
      new[k] = new[f"{family}.embeddings.word_embeddings.weight"]
    if k.endswith("predictions.decoder.bias"):
      new[k] = new["cls.predictions.bias"]
  model.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()}, strict=False)
  return model, {k: v.numpy() for k, v in model.state_dict().items()}


def torch_outputs(model, head):
  torch = pytest.importorskip("torch")
  inputs = {
    "input_ids": torch.from_numpy(IDS),
    "attention_mask": torch.from_numpy(MASK),
    "token_type_ids": torch.from_numpy(TYPES),
  }
  with torch.no_grad():
    out = model(**inputs)
  if head == "backbone":
    pooled = getattr(out, "pooler_output", None)
    return out.last_hidden_state.numpy(), None if pooled is None else pooled.numpy()
  return out.logits.numpy()


def our_outputs(state, config, head):
  params = convert.params_from_hf(state, config)
  inputs = dict(attention_mask=MASK, token_type_ids=TYPES)
  if head == "backbone":
    out = Transformer(config).apply({"params": params["backbone"]}, IDS, **inputs)
    return np.asarray(out.sequence), None if out.pooled is None else np.asarray(out.pooled)
  model = MaskedLM(config) if head == "mlm" else SequenceClassifier(config, NUM_LABELS)
  return np.asarray(model.apply({"params": params}, IDS, **inputs))


@pytest.mark.parametrize("head", ["backbone", "mlm", "classifier"])
@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_matches_pytorch(family, head):
  # RoFormer with an embedding width below the hidden size exercises the projection.
  model, state = torch_model(family, head, embedding_size=24)
  config = convert.config_from_hf(model.config.to_dict())
  expected, ours = torch_outputs(model, head), our_outputs(state, config, head)
  for e, o in zip(jax.tree.leaves(expected), jax.tree.leaves(ours), strict=True):
    np.testing.assert_allclose(o, e, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- Flax reference


def flax_model(family, head):
  """A random HF Flax model, its params, and the same params under PyTorch names."""
  name = {"bert": "FlaxBert", "roformer": "FlaxRoFormer"}[family]
  cls = {"backbone": "Model", "mlm": "ForMaskedLM", "classifier": "ForSequenceClassification"}
  model = getattr(transformers, name + cls[head])(hf_config(family), seed=0)
  flat = traverse_util.flatten_dict(model.params)
  params = traverse_util.unflatten_dict(
    dict(zip(flat, randomised({k: v.shape for k, v in flat.items()}).values(), strict=True))
  )
  return model, params, torch_names(params)


def torch_names(flax_params):
  """HF Flax parameter tree → PyTorch state-dict names (kernels transposed)."""
  state = {}
  for path, value in traverse_util.flatten_dict(flax_params).items():
    *module, leaf = path
    name = ".".join(module)
    if leaf == "kernel":
      state[f"{name}.weight"] = np.asarray(value).T
    elif leaf in ("scale", "embedding"):
      state[f"{name}.weight"] = np.asarray(value)
    else:
      state[f"{name}.{leaf}"] = np.asarray(value)
  return state


@pytest.mark.parametrize("head", ["backbone", "mlm", "classifier"])
@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_matches_flax(family, head):
  model, params, state = flax_model(family, head)
  out = model(IDS, attention_mask=MASK, token_type_ids=TYPES, params=params)
  if head == "backbone":
    expected = (out.last_hidden_state, getattr(out, "pooler_output", None))
  else:
    expected = out.logits
  config = convert.config_from_hf(model.config.to_dict())
  ours = our_outputs(state, config, head)
  for e, o in zip(jax.tree.leaves(expected), jax.tree.leaves(ours), strict=True):
    np.testing.assert_allclose(o, e, atol=TOL, rtol=0)


# ------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_round_trip_through_hf_names(family):
  config = convert.config_from_hf(hf_config(family, 24).to_dict())
  variables = SequenceClassifier(config, NUM_LABELS).init(jax.random.key(0), IDS)
  params = nn.meta.unbox(variables)["params"]
  mlm = nn.meta.unbox(MaskedLM(config).init(jax.random.key(1), IDS))["params"]
  params = {**params, "mlm_head": mlm["mlm_head"]}
  state = convert.params_to_hf(params, config)
  assert f"{family}.encoder.layer.1.attention.self.query.weight" in state
  # C-contiguous, so that writers of raw buffers (safetensors' numpy save_file) write them right.
  assert all(value.flags.c_contiguous for value in state.values())
  back = convert.params_from_hf(state, config)
  jax.tree.map(np.testing.assert_array_equal, back, params)
  assert convert.config_from_hf(convert.config_to_hf(config)) == config


def test_old_layer_norm_names_and_missing_prefix_are_accepted():
  _, _, state = flax_model("bert", "backbone")
  old = {
    k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
    for k, v in state.items()
  }
  config = convert.config_from_hf(hf_config("bert").to_dict())
  jax.tree.map(
    np.testing.assert_array_equal,
    convert.params_from_hf(old, config),
    convert.params_from_hf(state, config),
  )


def test_mismatched_checkpoints_give_clear_errors():
  _, _, state = flax_model("bert", "mlm")
  config = convert.config_from_hf(hf_config("bert").to_dict())
  with pytest.raises(ValueError, match=r"has shape \(99, 32\); this config expects \(100, 32\)"):
    convert.params_from_hf(state, config.__class__(**{**config.__dict__, "vocab_size": 100}))
  with pytest.raises(ValueError, match=r"lacks 'encoder\.layer\.0\.output\.dense\.weight'"):
    convert.params_from_hf(
      {k: v for k, v in state.items() if "0.output.dense.weight" not in k}, config
    )
  with pytest.raises(ValueError, match="does not use"):
    convert.params_from_hf({**state, "bert.encoder.layer.5.x.weight": np.zeros(3)}, config)
  with pytest.raises(ValueError, match="only 'bert' and 'roformer'"):
    convert.config_from_hf({"model_type": "gpt2"})


def test_a_checkpoint_folder_is_read_whole_and_a_missing_file_is_named(tmp_path):
  safetensors = pytest.importorskip("safetensors.numpy")
  _, _, state = flax_model("bert", "mlm")
  (tmp_path / "config.json").write_text(hf_config("bert").to_json_string())
  with pytest.raises(FileNotFoundError, match=r"lacks model\.safetensors"):
    convert.load_checkpoint(tmp_path)
  assert convert.load_checkpoint(tmp_path, weights=False).state_dict is None
  safetensors.save_file(
    {k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp_path / "model.safetensors")
  )
  checkpoint = convert.load_checkpoint(tmp_path)
  assert checkpoint.vocab_file is None and checkpoint.config["model_type"] == "bert"
  jax.tree.map(np.testing.assert_array_equal, checkpoint.state_dict, dict(state))
  (tmp_path / "vocab.txt").write_text("[PAD]\n")
  assert convert.load_checkpoint(tmp_path, weights=False).vocab_file == tmp_path / "vocab.txt"


# -------------------------------------------------------------------------------- upcycling


@pytest.mark.parametrize("family", ["bert", "roformer"])
@pytest.mark.parametrize("query", ["elementwise", "linear"])
def test_upcycled_model_keeps_the_source_weights_and_trains(family, query):
  _, _, state = flax_model(family, "mlm")
  source_config = convert.config_from_hf(hf_config(family).to_dict())
  source = convert.params_from_hf(state, source_config)
  config, params = convert.upcycle(
    state, hf_config(family).to_dict(), layout="top", mobius_query=query
  )
  assert config.layer_kinds == "VM"
  model = MaskedLM(config)
  # The tree is exactly what the model initialises.
  expected = jax.eval_shape(model.init, jax.random.key(0), IDS)["params"]
  assert jax.tree.structure(nn.meta.unbox(expected)) == jax.tree.structure(params)
  jax.tree.map(
    lambda e, p: np.testing.assert_equal(e.shape, p.shape), nn.meta.unbox(expected), params
  )
  # Vanilla layers, embeddings and heads are the source's, unchanged.
  for part in (("backbone", "embeddings"), ("mlm_head",), ("backbone", "encoder", "layer_0")):
    jax.tree.map(np.testing.assert_array_equal, _get(params, part), _get(source, part))
  # The Möbius layer starts from source layer 1: both channels' blocks, the projections, identity.
  mobius, vanilla = (
    params["backbone"]["encoder"]["layer_1"],
    source["backbone"]["encoder"]["layer_1"],
  )
  for part in ("real", "imag"):
    for block in ("attention_norm", "mlp", "mlp_norm"):
      jax.tree.map(np.testing.assert_array_equal, mobius[f"{block}_{part}"], vanilla[block])
  mobius_dims = config.mobius_heads * config.head_dim
  assert 0 < mobius_dims < config.hidden_size  # Möbius and complex-linear query heads
  copies = {name: (name, slice(None)) for name in ("key", "value", "output")}
  copies["query"] = ("query", slice(mobius_dims, None))  # the complex-linear heads' columns
  if query == "linear":
    copies["query_linear"] = ("query", slice(0, mobius_dims))
  assert set(copies) == set(mobius["attention"]) - {"query_mobius"}
  for name, (source_name, columns) in copies.items():
    _assert_projects_each_channel_as(
      mobius["attention"][name], vanilla["attention"][source_name], columns
    )
  coefficients = mobius["attention"]["query_mobius"]["coefficients"]
  np.testing.assert_array_equal(coefficients[[0, 3], 0], 1.0)
  assert np.count_nonzero(coefficients) == 2 * coefficients.shape[-1]

  # Training on a fixed batch: 8 Adam steps take the loss down, every step (to about 0.65×).
  def loss_fn(p):
    logits = model.apply({"params": p}, IDS, attention_mask=MASK)
    return optax.softmax_cross_entropy_with_integer_labels(logits, IDS).mean()

  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(p, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss, grads

  opt_state, losses = optimizer.init(params), []
  for _ in range(9):  # the loss before each step: 8 steps' effect
    params, opt_state, loss, grads = step(params, opt_state)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    losses.append(float(loss))
  assert all(np.diff(losses) < 0), losses
  assert losses[-1] < 0.8 * losses[0], losses


def _assert_projects_each_channel_as(complex_params, dense, columns):
  """The upcycled `ComplexDense` maps (x, y) to (W x + b, W y + b), W and b the source's."""
  kernel, bias = dense["kernel"][:, columns], dense["bias"][columns]
  np.testing.assert_array_equal(complex_params["kernel_real"], kernel)
  assert not np.any(complex_params["kernel_imag"])
  x, y = (np.random.default_rng(seed).normal(size=(3, kernel.shape[0])) for seed in (0, 1))
  layer = ComplexDense(kernel.shape[1], axes=("embed", "heads"))
  out = layer.apply({"params": complex_params}, (x.astype(np.float32), y.astype(np.float32)))
  np.testing.assert_allclose(out[0], x @ kernel + bias, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[1], y @ kernel + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_upcycling_with_split_embeddings_adds_a_fresh_position_norm(family):
  # Layer 0 Möbius (framed): the new `position_norm` is LayerNorm's init (ones, zeros); the rest
  # of the embeddings is the source's. Layer 0 vanilla (top): no split, nothing added.
  _, _, state = flax_model(family, "mlm")
  source = convert.params_from_hf(state, convert.config_from_hf(hf_config(family).to_dict()))
  for layout, split in (("framed", True), ("top", False)):
    config, params = convert.upcycle(
      state, hf_config(family).to_dict(), layout=layout, mobius_embeddings="split"
    )
    assert config.split_embeddings == split
    expected = jax.eval_shape(MaskedLM(config).init, jax.random.key(0), IDS)["params"]
    assert jax.tree.structure(nn.meta.unbox(expected)) == jax.tree.structure(params)
    embeddings = dict(params["backbone"]["embeddings"])
    if split:
      norm = embeddings.pop("position_norm")
      np.testing.assert_array_equal(norm["scale"], np.ones(config.hidden_size))
      np.testing.assert_array_equal(norm["bias"], np.zeros(config.hidden_size))
    jax.tree.map(np.testing.assert_array_equal, embeddings, source["backbone"]["embeddings"])
  logits = MaskedLM(config).apply({"params": params}, IDS, attention_mask=MASK)
  assert np.all(np.isfinite(logits))


def test_upcycling_a_shallower_model_from_chosen_layers():
  _, _, state = flax_model("bert", "backbone")
  _, params = convert.upcycle(
    state, hf_config("bert").to_dict(), layout="M", num_layers=1, source_layers=[1]
  )
  attention = params["backbone"]["encoder"]["layer_0"]["attention"]
  np.testing.assert_array_equal(
    attention["output"]["kernel_real"], state["encoder.layer.1.attention.output.dense.weight"].T
  )
  with pytest.raises(ValueError, match="source_layers"):
    convert.upcycle(state, hf_config("bert").to_dict(), num_layers=2, source_layers=[0, 5])


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree
