"""An independent numpy reference for MöbiusBERT, written from docs/reconstruction.md's choices.

Nothing here calls the package: the reference is numpy complex128 / float64 code on the Flax
parameter tree (its names: `ComplexDense` holds kernel_real, kernel_imag [in, out] and
bias_real, bias_imag; `MobiusMap` holds coefficients [4, 2, M·C] = (a, b, c, d) × (re, im)).
What it states:
  * embeddings: LayerNorm(word + position + token type);
  * entering a Möbius layer from the real stream, the stream is the real channel and the
    imaginary channel is the (learned) position embeddings for layer 0 and the embeddings'
    output (layer 0's input) for a later layer; consecutive Möbius layers pass both channels;
    leaving (to a vanilla layer or at the end) gives real + imaginary;
  * "split" embeddings, where layer 0 is a Möbius layer: its real channel is LayerNorm(word +
    token type) (`norm`), its imaginary channel LayerNorm(position) (`position_norm`), and a
    later Möbius layer's imaginary channel is that real channel (the token embeddings); where
    layer 0 is vanilla, nothing changes;
  * head h < M: query = the pole-safe map n · conj(m) / (|m|² + ε), n = a z + b, m = c z + d,
    of input dimensions h·C … (h + 1)·C − 1; other heads, keys, values and the output: complex
    dense; score Re(q · conj(k)) / √(2C), softmax over the real keys, complex value average;
  * per channel, BERT's post-LN blocks with their own LayerNorms (two-pass variance) and
    feed-forward (exact erf GELU), separate residuals; vanilla layers are BERT's.
The parameters are the Flax model's, every one redrawn so that none sits at a value (zero bias,
unit scale, identity map) that would hide a mix-up, the maps far from the identity.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from mobius_jax.layers import ComplexEncoderLayer
from mobius_jax.models import MaskedLM, ModelConfig

CONFIG = ModelConfig(
  hidden_size=16,
  num_heads=2,
  intermediate_size=24,
  num_layers=3,
  vocab_size=30,
  max_position_embeddings=16,
  layout="MVM",
  num_mobius_heads=1,
  hidden_dropout=0.0,
  attention_dropout=0.0,
)
IDS = np.array([[3, 7, 1, 12, 29, 4], [5, 2, 9, 21, 0, 0]])
TYPES = np.array([[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 0, 0]])
VALID = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
# Float32 against float64: errors relative to the output's root mean square.
RTOL = 1e-5


# --------------------------------------------------------------------------------- reference


def layer_norm(x, p, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def gelu(x):
  return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def dense(x, p):
  return x @ p["kernel"] + p["bias"]


def complex_dense(x, p):
  return x @ (p["kernel_real"] + 1j * p["kernel_imag"]) + (p["bias_real"] + 1j * p["bias_imag"])


def feed_forward(x, p):
  return dense(gelu(dense(x, p["intermediate"])), p["output"])


def attention(q, k, v, valid, scale):
  """q, k, v [B, L, N, C] (complex or real); scores Re(q · conj(k)) → [B, L, N, C]."""
  scores = np.real(np.einsum("btnc,bsnc->bnts", q, np.conj(k))) * scale
  scores = np.where(valid[:, None, None, :] > 0, scores, -np.inf)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bnts,bsnc->btnc", weights, v)


def heads(x, n):
  return x.reshape(*x.shape[:-1], n, -1)


def vanilla_layer(x, p, valid, cfg):
  a = p["attention"]
  q, k, v = (heads(dense(x, a[name]), cfg.num_heads) for name in ("query", "key", "value"))
  out = attention(q, k, v, valid, cfg.head_dim**-0.5).reshape(x.shape)
  x = layer_norm(x + dense(out, a["output"]), p["attention_norm"], cfg.layer_norm_eps)
  return layer_norm(x + feed_forward(x, p["mlp"]), p["mlp_norm"], cfg.layer_norm_eps)


def mobius_layer(x, p, valid, cfg):
  """x: complex [B, L, D] → complex [B, L, D]."""
  a = p["attention"]
  mobius_dims = cfg.num_mobius_heads * cfg.head_dim
  coeff = a["query_mobius"]["coefficients"][:, 0] + 1j * a["query_mobius"]["coefficients"][:, 1]
  z = x[..., :mobius_dims]
  n, m = coeff[0] * z + coeff[1], coeff[2] * z + coeff[3]
  q_mobius = n * np.conj(m) / (np.abs(m) ** 2 + cfg.mobius_eps)
  q = np.concatenate([q_mobius, complex_dense(x, a["query"])], axis=-1)
  k, v = complex_dense(x, a["key"]), complex_dense(x, a["value"])
  q, k, v = (heads(t, cfg.num_heads) for t in (q, k, v))
  out = attention(q, k, v, valid, (2 * cfg.head_dim) ** -0.5).reshape(x.shape)
  out = complex_dense(out, a["output"])
  channels = []
  for part, h, o in (("real", x.real, out.real), ("imag", x.imag, out.imag)):
    h = layer_norm(h + o, p[f"attention_norm_{part}"], cfg.layer_norm_eps)
    h = layer_norm(h + feed_forward(h, p[f"mlp_{part}"]), p[f"mlp_norm_{part}"], cfg.layer_norm_eps)
    channels.append(h)
  return channels[0] + 1j * channels[1]


def masked_lm(params, ids, types, valid, cfg):
  """The MaskedLM logits [B, L, V]."""
  emb = params["backbone"]["embeddings"]
  table = lambda name: emb[f"{name}_embeddings"]["embedding"]  # noqa: E731
  tokens = table("word")[ids] + table("token_type")[types]
  positions = table("position")[np.arange(ids.shape[1])]
  if cfg.mobius_embeddings == "split" and cfg.layer_kinds[0] == "M":
    x = layer_norm(tokens, emb["norm"], cfg.layer_norm_eps)
    positions = layer_norm(positions, emb["position_norm"], cfg.layer_norm_eps)
  else:
    x = layer_norm(tokens + positions, emb["norm"], cfg.layer_norm_eps)
  first, stream = x, x
  for i, kind in enumerate(cfg.layer_kinds):
    p = params["backbone"]["encoder"][f"layer_{i}"]
    if kind == "M":
      if not np.iscomplexobj(stream):
        stream = stream + 1j * (positions if i == 0 else first)
      stream = mobius_layer(stream, p, valid, cfg)
    else:
      if np.iscomplexobj(stream):
        stream = stream.real + stream.imag
      stream = vanilla_layer(stream, p, valid, cfg)
  if np.iscomplexobj(stream):
    stream = stream.real + stream.imag
  head = params["mlm_head"]
  h = layer_norm(gelu(dense(stream, head["transform"])), head["transform_norm"], cfg.layer_norm_eps)
  return h @ table("word").T + head["bias"]


# ----------------------------------------------------------------------------- the parameters


def redrawn(params, seed=0):
  """Every parameter redrawn (float32): kernels normal(1/√fan-in), biases normal(0.2),
  LayerNorm scales 1 + normal(0.2), tables normal(0.5), Möbius maps far from the identity but
  with no pole near O(1) inputs."""
  rng = np.random.default_rng(seed)

  def draw(path, x):
    name = path[-1].key
    if name == "coefficients":
      identity = np.zeros(x.shape)
      identity[[0, 3], 0] = 1
      spread = np.array([0.5, 0.5, 0.05, 0.2])[:, None, None]
      value = identity + spread * rng.normal(size=x.shape)
    elif name.startswith("kernel"):
      value = rng.normal(size=x.shape) / np.sqrt(x.shape[0])
    elif name == "scale":
      value = 1 + 0.2 * rng.normal(size=x.shape)
    elif name == "embedding":
      value = 0.5 * rng.normal(size=x.shape)
    else:
      value = 0.2 * rng.normal(size=x.shape)
    return value.astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, params)


def as_float64(params):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), params)


def assert_close(actual, expected):
  expected = np.asarray(expected)
  actual = np.asarray(actual).astype(expected.dtype)
  scale = np.sqrt(np.mean(np.abs(expected) ** 2))
  np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL * scale)


# ---------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize(
  "layout, embeddings",
  [("MVM", "stream"), ("MM", "stream"), ("MVM", "split"), ("MM", "split"), ("VM", "split")],
)
def test_mobius_bert_matches_the_numpy_reference(layout, embeddings):
  # MVM: layer 0 takes the positions as imaginary input, layer 2 (after a vanilla layer) the
  # embeddings' output (split: the token embeddings); MM: layer 1 takes both channels of
  # layer 0; VM: split embeddings change nothing. One Möbius head of two.
  cfg = dataclasses.replace(
    CONFIG, layout=layout, num_layers=len(layout), mobius_embeddings=embeddings
  )
  model = MaskedLM(cfg)
  params = redrawn(nn.meta.unbox(model.init(jax.random.key(0), IDS))["params"])
  logits = model.apply({"params": params}, IDS, attention_mask=VALID, token_type_ids=TYPES)
  expected = masked_lm(as_float64(params), IDS, TYPES, VALID, cfg)
  assert_close(logits, expected)
  # The maps matter: with the identity query the reference is far from the model.
  identity = jax.tree.map(np.copy, as_float64(params))
  for i, kind in enumerate(layout):
    if kind == "M":
      c = identity["backbone"]["encoder"][f"layer_{i}"]["attention"]["query_mobius"]
      c["coefficients"][:] = 0
      c["coefficients"][[0, 3], 0] = 1
  off = masked_lm(identity, IDS, TYPES, VALID, cfg)
  assert np.abs(off - expected).max() > 1e3 * RTOL * np.sqrt(np.mean(expected**2))
  # So does the reading: with a Möbius layer 0, "stream" on the same parameters is far too.
  if embeddings == "split" and layout[0] == "M":
    stream = dataclasses.replace(cfg, mobius_embeddings="stream")
    off = masked_lm(as_float64(params), IDS, TYPES, VALID, stream)
    assert np.abs(off - expected).max() > 1e3 * RTOL * np.sqrt(np.mean(expected**2))


def test_complex_encoder_layer_matches_the_numpy_reference():
  rng = np.random.default_rng(1)
  x = tuple(rng.normal(size=(2, 6, 16)).astype(np.float32) for _ in range(2))
  layer = ComplexEncoderLayer(CONFIG)
  params = redrawn(nn.meta.unbox(layer.init(jax.random.key(0), x))["params"], seed=1)
  mask = jnp.asarray(VALID > 0)[:, None, None, :]
  out = layer.apply({"params": params}, x, mask=mask)
  expected = mobius_layer(x[0] + 1j * np.float64(x[1]), as_float64(params), VALID, CONFIG)
  assert_close(out[0] + 1j * np.float64(out[1]), expected)
