"""MöbiusBERT and MöbiusRoFormer in PyTorch: the encoder and its masked-LM and classifier heads.

A model folder that mobius_jax exported ships this file, so that transformers loads the model
with `AutoModel.from_pretrained(DIR, trust_remote_code=True)` (and `AutoModelForMaskedLM`,
`AutoModelForSequenceClassification`). It computes what mobius_jax's Flax models compute (the
export tests hold the two to 1e-5 in float32); its parameter names follow BERT's where BERT has
the part, so a vanilla layer reads as `BertLayer`'s names.

Shapes: B batch, L length, N heads, H head dim (a Möbius head has C = H complex dims), D hidden
size, E embedding size, V vocabulary, K labels. A complex tensor is a pair (real, imag) of real
tensors of one shape.

A Möbius layer (`config.layout` letter "M") takes a pair: entering from the real stream, the
stream is the real channel and the imaginary channel is the position encoding (layer 0) or the
first layer's input (later layers); leaving, the channels are added. Its heads 0 … M − 1 have a
Möbius query, q_j = (a_j z_j + b_j) / (c_j z_j + d_j) per dimension j, evaluated pole-safely.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
  BaseModelOutputWithPooling,
  MaskedLMOutput,
  SequenceClassifierOutput,
)

from .configuration_mobius import MobiusConfig

ACTIVATIONS = {
  "gelu": F.gelu,
  "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
  "relu": F.relu,
}
SINUSOID_BASE = 10000.0  # RoFormer's fixed position encoding, whatever the rotary base


# ------------------------------------------------------------------------------ functions


def _mul(x, y):
  return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]


def mobius_transform(z, a, b, c, d, eps: float):
  """(a z + b) / (c z + d) on pairs: z `[..., D]`, coefficients `[D]` → a pair `[..., D]`.

  With eps > 0 the pole-safe form n · conj(m) / (|m|² + eps), n = a z + b, m = c z + d: smooth
  and finite everywhere, the pole included. Evaluated in scaled units that do not change the
  value (coefficients scaled up to a largest part of 1, z as (z / t : 1 / t) with
  t = max(|Re z|, |Im z|) within [1, 2^100], n and m divided by max(|m|, √eps) in those units),
  so that nothing over- or underflows; the scales carry no gradient.
  """
  parts = [part.abs() for x in (a, b, c, d) for part in x]
  largest = parts[0]
  for part in parts[1:]:
    largest = torch.maximum(largest, part)
  inv_lam = (1 / largest.clamp(2.0**-120, 1.0)).detach()
  a, b, c, d = ((x[0] * inv_lam, x[1] * inv_lam) for x in (a, b, c, d))
  inv_t = (1 / torch.maximum(z[0].abs(), z[1].abs()).clamp(1.0, 2.0**100)).detach()
  w = (z[0] * inv_t, z[1] * inv_t)
  num = tuple(p + q * inv_t for p, q in zip(_mul(a, w), b, strict=True))
  den = tuple(p + q * inv_t for p, q in zip(_mul(c, w), d, strict=True))
  root = eps**0.5 * inv_lam * inv_t
  scale = torch.maximum(torch.maximum(den[0].abs(), den[1].abs()), root).detach()
  pole = scale == 0  # only for eps = 0 at the pole itself (NaN there: the exact map)
  inv_s = 1 / torch.where(pole, torch.ones_like(scale), scale)
  num = (num[0] * inv_s, num[1] * inv_s)
  den = (den[0] * inv_s, den[1] * inv_s)
  den_sq = den[0] ** 2 + den[1] ** 2
  if eps > 0:
    den_sq = den_sq + torch.where(pole, torch.ones_like(scale), (root * inv_s) ** 2)
  return (
    (num[0] * den[0] + num[1] * den[1]) / den_sq,
    (num[1] * den[0] - num[0] * den[1]) / den_sq,
  )


def _angles(positions, num_freqs: int, base: float):
  """m · θ_j, θ_j = base^(−j / num_freqs): positions `[(B,) L]` → float32 `[(B,) L, F]`."""
  exponents = -torch.arange(num_freqs, dtype=torch.float32, device=positions.device) / num_freqs
  return positions[..., None].float() * torch.pow(base, exponents)


def sinusoids(positions, dim: int):
  """RoFormer's fixed encoding [sin(m θ_j) | cos(m θ_j)]: `[(B,) L]` → `[(B,) L, dim]`."""
  angles = _angles(positions, dim // 2, SINUSOID_BASE)
  return torch.cat([angles.sin(), angles.cos()], dim=-1)


def rotate_pairs(x, positions, base: float):
  """RoFormer's rotary positions: each pair (x_2j, x_2j+1) of `[B, L, N, H]` turned by m θ_j."""
  angles = _angles(positions, x.shape[-1] // 2, base)[..., None, :]  # [(B,) L, 1, H/2]
  even, odd = x.float().unflatten(-1, (-1, 2)).unbind(-1)
  cos, sin = angles.cos(), angles.sin()
  turned = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
  return turned.flatten(-2).to(x.dtype)


def rotate_complex(x, positions, base: float):
  """Complex dimension j of a pair `[B, L, N, C]` at position m times e^{i m θ_j}."""
  angles = _angles(positions, x[0].shape[-1], base)[..., None, :]  # [(B,) L, 1, C]
  cos, sin = angles.cos(), angles.sin()
  return x[0] * cos - x[1] * sin, x[0] * sin + x[1] * cos


def attend(query, key, value, mask, dropout: nn.Dropout, scale: float, scores=None):
  """softmax(q kᵀ · scale) v per head: `[B, T, N, H]` queries, `[B, S, N, H]` keys and values.

  mask: bool `[B, 1, 1, S]` (True at real tokens) or None; `scores`: given `[B, N, T, S]`
  scores (unscaled) replace q kᵀ.
  """
  if scores is None:
    scores = torch.einsum("btnh,bsnh->bnts", query, key)
  scores = scores.to(torch.promote_types(scores.dtype, torch.float32)) * scale
  if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
  weights = dropout(scores.softmax(dim=-1)).to(value.dtype)
  return torch.einsum("bnts,bsnh->btnh", weights, value)


def complex_attend(query, key, value, mask, dropout: nn.Dropout, score: str):
  """Attention on pairs `[B, T, N, C]` (queries) and `[B, S, N, C]`: a pair `[B, T, N, C]`.

  Scores: "hermitian" Re(q · conj(k)), "bilinear" Re(q · k), "magnitude" |q · conj(k)|, each
  times 1 / √(2C); the real weights average the complex values.
  """
  dims = query[0].shape[-1]
  scale = (2 * dims) ** -0.5
  values = torch.cat(value, dim=-1)
  if score == "magnitude":
    dot = lambda x, y: torch.einsum("btnc,bsnc->bnts", x, y)  # noqa: E731
    real = dot(query[0], key[0]) + dot(query[1], key[1])
    imag = dot(query[1], key[0]) - dot(query[0], key[1])
    out = attend(None, None, values, mask, dropout, scale, scores=(real**2 + imag**2).sqrt())
  else:
    q_imag = -query[1] if score == "bilinear" else query[1]
    q = torch.cat([query[0], q_imag], dim=-1)
    out = attend(q, torch.cat(key, dim=-1), values, mask, dropout, scale)
  return out[..., :dims], out[..., dims:]


def _heads(x, num_heads: int):
  """`[B, L, D]` → `[B, L, N, D / N]`."""
  return x.unflatten(-1, (num_heads, -1))


# -------------------------------------------------------------------------- complex layers


class ComplexLinear(nn.Module):
  """y = W z + b for complex z, W, b: `weight_real`, `weight_imag` `[out, in]`, `bias_*` `[out]`."""

  def __init__(self, in_features: int, out_features: int):
    super().__init__()
    self.weight_real = nn.Parameter(torch.empty(out_features, in_features))
    self.weight_imag = nn.Parameter(torch.empty(out_features, in_features))
    self.bias_real = nn.Parameter(torch.zeros(out_features))
    self.bias_imag = nn.Parameter(torch.zeros(out_features))

  def forward(self, z):
    """z: pair `[..., in]` → pair `[..., out]`."""
    real = F.linear(z[0], self.weight_real) - F.linear(z[1], self.weight_imag) + self.bias_real
    imag = F.linear(z[0], self.weight_imag) + F.linear(z[1], self.weight_real) + self.bias_imag
    return real, imag


class ComplexScale(nn.Module):
  """y_j = w_j z_j + b_j per dimension: `scale`, `bias` `[2, D]` (real and imaginary part)."""

  def __init__(self, features: int):
    super().__init__()
    self.scale = nn.Parameter(torch.zeros(2, features))
    self.bias = nn.Parameter(torch.zeros(2, features))

  def forward(self, z):
    """z: pair `[..., D]` → pair `[..., D]`."""
    w, b = self.scale, self.bias
    return z[0] * w[0] - z[1] * w[1] + b[0], z[0] * w[1] + z[1] * w[0] + b[1]


class MobiusMap(nn.Module):
  """A learned Möbius map per dimension: `coefficients` `[4, 2, D]`, (a, b, c, d) × (re, im)."""

  def __init__(self, features: int, eps: float):
    super().__init__()
    self.eps = eps
    self.coefficients = nn.Parameter(torch.zeros(4, 2, features))

  def forward(self, z):
    """z: pair `[..., D]` → pair `[..., D]`."""
    a, b, c, d = ((self.coefficients[i, 0], self.coefficients[i, 1]) for i in range(4))
    return mobius_transform(z, a, b, c, d, self.eps)


# ------------------------------------------------------------------------------- the layers


class FeedForward(nn.Module):
  """dense(D → F) `intermediate`, activation, dense(F → D) `output`."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
    self.output = nn.Linear(config.intermediate_size, config.hidden_size)
    self.act = ACTIVATIONS[config.hidden_act]

  def forward(self, x):
    return self.output(self.act(self.intermediate(x)))


class Projections(nn.Module):
  """BERT's `query`, `key` and `value` (`attention.self`)."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    width = config.hidden_size
    self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))


class Residual(nn.Module):
  """BERT's output block: LayerNorm(residual + dropout(dense(h)))."""

  def __init__(self, in_features: int, config: MobiusConfig):
    super().__init__()
    self.dense = nn.Linear(in_features, config.hidden_size)
    self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)

  def forward(self, h, residual):
    return self.LayerNorm(residual + self.dropout(self.dense(h)))


class Attention(nn.Module):
  """BERT's self-attention (`self`: projections, `output`: its residual block), rotary for
  RoFormer."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.config = config
    self.self = Projections(config)
    self.output = Residual(config.hidden_size, config)
    self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

  def forward(self, x, mask, positions):
    """x: `[B, L, D]` → `[B, L, D]`, after the residual block."""
    cfg, heads = self.config, self.config.num_attention_heads
    projections = self.self
    q, k, v = (
      _heads(layer(x), heads) for layer in (projections.query, projections.key, projections.value)
    )
    if cfg.rotary:
      q, k = (rotate_pairs(t, positions, cfg.rotary_base) for t in (q, k))
    out = attend(q, k, v, mask, self.dropout, q.shape[-1] ** -0.5)
    return self.output(out.flatten(-2), x)


class VanillaLayer(nn.Module):
  """BERT's post-LayerNorm layer, with BERT's parameter names."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.attention = Attention(config)
    self.intermediate = nn.Module()
    self.intermediate.dense = nn.Linear(config.hidden_size, config.intermediate_size)
    self.output = Residual(config.intermediate_size, config)
    self.act = ACTIVATIONS[config.hidden_act]

  def forward(self, x, mask, positions):
    x = self.attention(x, mask, positions)
    return self.output(self.act(self.intermediate.dense(x)), x)


class MobiusAttention(nn.Module):
  """MöbiusAttention on a pair `[B, L, D]`: complex keys, values and output projection for all
  heads; the first `num_mobius_heads` heads' query a Möbius map (`query_mobius`, after the
  complex-linear `query_linear` for mobius_query="linear"), the others' complex-linear
  (`query`)."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.config = config
    width = config.hidden_size
    self.mobius_dims = config.num_mobius_heads * (width // config.num_attention_heads)
    if self.mobius_dims:
      self.query_mobius = MobiusMap(self.mobius_dims, config.mobius_eps)
      if config.mobius_query == "linear":
        self.query_linear = ComplexLinear(width, self.mobius_dims)
    if self.mobius_dims < width:
      self.query = ComplexLinear(width, width - self.mobius_dims)
    dense = config.mobius_key_value == "dense"
    self.key, self.value = (
      ComplexLinear(width, width) if dense else ComplexScale(width) for _ in range(2)
    )
    self.output = ComplexLinear(width, width)
    self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

  def forward(self, x, mask, positions):
    """x: pair `[B, L, D]` → pair `[B, L, D]`."""
    cfg, dims = self.config, self.mobius_dims
    queries = []
    if dims:
      linear = cfg.mobius_query == "linear"
      z = self.query_linear(x) if linear else (x[0][..., :dims], x[1][..., :dims])
      queries.append(self.query_mobius(z))
    if dims < cfg.hidden_size:
      queries.append(self.query(x))
    q = tuple(torch.cat([query[i] for query in queries], dim=-1) for i in range(2))
    q, k, v = (
      tuple(_heads(part, cfg.num_attention_heads) for part in t)
      for t in (q, self.key(x), self.value(x))
    )
    if cfg.rotary:
      q, k = (rotate_complex(t, positions, cfg.rotary_base) for t in (q, k))
    out = complex_attend(q, k, v, mask, self.dropout, cfg.mobius_score)
    return self.output(tuple(part.flatten(-2) for part in out))


class MobiusLayer(nn.Module):
  """The Möbius layer: MöbiusAttention, then on each channel c (real, imag) its own residual
  blocks, x_c ← LN(x_c + a_c), x_c ← LN(x_c + FF(x_c)) (`attention_norm_c`, `mlp_c`,
  `mlp_norm_c`)."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.attention = MobiusAttention(config)
    for part in ("real", "imag"):
      for name in ("attention_norm", "mlp_norm"):
        setattr(self, f"{name}_{part}", nn.LayerNorm(config.hidden_size, config.layer_norm_eps))
      setattr(self, f"mlp_{part}", FeedForward(config))
    self.dropout = nn.Dropout(config.hidden_dropout_prob)

  def forward(self, x, mask, positions):
    """x: pair `[B, L, D]` → pair `[B, L, D]`."""
    out, attended = [], self.attention(x, mask, positions)
    for part, channel, a in zip(("real", "imag"), x, attended, strict=True):
      channel = getattr(self, f"attention_norm_{part}")(channel + self.dropout(a))
      f = getattr(self, f"mlp_{part}")(channel)
      out.append(getattr(self, f"mlp_norm_{part}")(channel + self.dropout(f)))
    return tuple(out)


class Encoder(nn.Module):
  """The layers of `config.layout` (`layer.{i}`) and the transitions between real and complex
  layers; with `mobius_imag_gate`, the gates `imag_gate_{i}` `[D]` on the imaginary channel
  where Möbius layer i takes it from the real side."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.config = config
    kinds = config.layout
    self.layer = nn.ModuleList(
      [MobiusLayer(config) if kind == "M" else VanillaLayer(config) for kind in kinds]
    )
    for i in self.gated_layers:
      self.register_parameter(f"imag_gate_{i}", nn.Parameter(torch.zeros(config.hidden_size)))

  @property
  def gated_layers(self) -> list[int]:
    kinds = self.config.layout
    if not self.config.mobius_imag_gate:
      return []
    return [i for i, kind in enumerate(kinds) if kind == "M" and (i == 0 or kinds[i - 1] == "V")]

  def forward(self, x, imag_input, mask, positions):
    """x: `[B, L, D]`; imag_input: `[B, L, D]` (layer 0 Möbius) or None → `[B, L, D]`."""
    stream = x
    for i, (kind, layer) in enumerate(zip(self.config.layout, self.layer, strict=True)):
      if kind == "M" and not isinstance(stream, tuple):
        imag = imag_input if i == 0 else x
        if self.config.mobius_imag_gate:
          imag = imag * getattr(self, f"imag_gate_{i}")
        stream = (stream, imag)
      elif kind == "V" and isinstance(stream, tuple):
        stream = stream[0] + stream[1]
      stream = layer(stream, mask, positions)
    return stream[0] + stream[1] if isinstance(stream, tuple) else stream


class Embeddings(nn.Module):
  """Word, (BERT) position and token type embeddings, LayerNorm and dropout: the stream or real
  channel. A Möbius layer 0 also gets an imaginary channel: the position encoding (BERT's
  learned rows, RoFormer's sinusoids at the hidden width); with mobius_embeddings="split" its
  LayerNorm `position_norm`, and the positions leave the real channel."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.config = config
    width = config.embedding_size
    self.word_embeddings = nn.Embedding(config.vocab_size, width)
    if config.family == "bert":
      self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
    self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
    self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
    if self.split:
      self.position_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)

  @property
  def split(self) -> bool:
    return self.config.mobius_embeddings == "split" and self.config.layout[0] == "M"

  def forward(self, input_ids, token_type_ids, positions):
    """int `[B, L]`, `[B, L]`, `[(B,) L]` → (`[B, L, E]`, `[B, L, D]` or None)."""
    cfg = self.config
    x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
    position = None
    if cfg.family == "bert":
      position = self.position_embeddings(positions)
      if not self.split:
        x = x + position
    x = self.dropout(self.LayerNorm(x))
    if cfg.layout[0] != "M":
      return x, None
    if position is None:
      position = sinusoids(positions, cfg.hidden_size).to(x.dtype)
    if self.split:
      position = self.position_norm(position)
    imag = position.expand(*x.shape[:-1], cfg.hidden_size)
    return x, self.dropout(imag) if self.split else imag


# ------------------------------------------------------------------------------- the models


class MobiusPreTrainedModel(PreTrainedModel):
  """Weights' initialisation and loading, shared by the models below."""

  config_class = MobiusConfig
  base_model_prefix = "mobius"

  def _init_weights(self, module):
    """Normal(initializer_range) kernels and tables (complex ones with std / √2 a part), zero
    biases, LayerNorms at one, identity Möbius maps and scalings, gates at zero."""
    std = self.config.initializer_range
    if isinstance(module, nn.Linear | nn.Embedding):
      module.weight.data.normal_(0.0, std)
    if isinstance(module, nn.Linear) and module.bias is not None:
      module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
      module.weight.data.fill_(1.0)
      module.bias.data.zero_()
    elif isinstance(module, ComplexLinear):
      for weight in (module.weight_real, module.weight_imag):
        weight.data.normal_(0.0, std / 2**0.5)
      module.bias_real.data.zero_()
      module.bias_imag.data.zero_()
    elif isinstance(module, ComplexScale):
      module.scale.data.zero_()
      module.scale.data[0] = 1.0
      module.bias.data.zero_()
    elif isinstance(module, MobiusMap):
      module.coefficients.data.zero_()
      module.coefficients.data[0, 0] = module.coefficients.data[3, 0] = 1.0
    elif isinstance(module, Encoder):
      for i in module.gated_layers:
        getattr(module, f"imag_gate_{i}").data.zero_()
    elif isinstance(module, MaskedLMHead):
      module.predictions.bias.data.zero_()


def _unsupported(output_attentions, output_hidden_states) -> None:
  if output_attentions or output_hidden_states:
    raise ValueError(
      "This implementation returns no attention weights or hidden states of every layer; "
      "call it with output_attentions=False and output_hidden_states=False."
    )


class MobiusModel(MobiusPreTrainedModel):
  """The encoder (as `BertModel` / `RoFormerModel`): embeddings, layers and, for BERT, the
  pooler (tanh dense of the first token)."""

  def __init__(self, config: MobiusConfig, add_pooling_layer: bool = True):
    super().__init__(config)
    self.embeddings = Embeddings(config)
    if config.embedding_size != config.hidden_size:
      self.embeddings_project = nn.Linear(config.embedding_size, config.hidden_size)
    self.encoder = Encoder(config)
    if add_pooling_layer and config.family == "bert":
      self.pooler = nn.Module()
      self.pooler.dense = nn.Linear(config.hidden_size, config.hidden_size)
    self.post_init()

  def get_input_embeddings(self):
    return self.embeddings.word_embeddings

  def set_input_embeddings(self, value):
    self.embeddings.word_embeddings = value

  def forward(
    self,
    input_ids,
    attention_mask=None,
    token_type_ids=None,
    position_ids=None,
    output_attentions=None,
    output_hidden_states=None,
    return_dict=None,
  ):
    """input_ids, attention_mask (1 at real tokens), token_type_ids: int `[B, L]`; position_ids
    `[(B,) L]` → last_hidden_state `[B, L, D]`, pooler_output `[B, D]` (BERT) or None."""
    _unsupported(output_attentions, output_hidden_states)
    length = input_ids.shape[-1]
    if position_ids is None:
      position_ids = torch.arange(length, device=input_ids.device)
    if token_type_ids is None:
      token_type_ids = torch.zeros_like(input_ids)
    mask = None if attention_mask is None else (attention_mask != 0)[:, None, None, :]
    x, imag = self.embeddings(input_ids, token_type_ids, position_ids)
    if hasattr(self, "embeddings_project"):
      x = self.embeddings_project(x)
    x = self.encoder(x, imag, mask, position_ids)
    pooled = torch.tanh(self.pooler.dense(x[:, 0])) if hasattr(self, "pooler") else None
    if return_dict is False:
      return (x, pooled)
    return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled)


class MaskedLMHead(nn.Module):
  """`predictions`: dense(D → E), activation, LayerNorm (`transform`), then the word table's
  logits plus `bias` `[V]`."""

  def __init__(self, config: MobiusConfig):
    super().__init__()
    self.predictions = nn.Module()
    transform = self.predictions.transform = nn.Module()
    transform.dense = nn.Linear(config.hidden_size, config.embedding_size)
    transform.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
    self.predictions.bias = nn.Parameter(torch.zeros(config.vocab_size))
    self.act = ACTIVATIONS[config.hidden_act]

  def forward(self, x, word_table):
    """x: `[B, L, D]`; word_table: `[V, E]` → logits `[B, L, V]`."""
    transform = self.predictions.transform
    x = transform.LayerNorm(self.act(transform.dense(x)))
    return F.linear(x, word_table) + self.predictions.bias


class MobiusForMaskedLM(MobiusPreTrainedModel):
  """The encoder and the masked-LM head, its decoder the word embeddings."""

  def __init__(self, config: MobiusConfig):
    super().__init__(config)
    self.mobius = MobiusModel(config, add_pooling_layer=False)
    self.cls = MaskedLMHead(config)
    self.post_init()

  def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **inputs):
    """Logits `[B, L, V]`; with labels (int `[B, L]`, −100 where not scored) the mean
    cross-entropy. Other inputs as in `MobiusModel`."""
    x = self.mobius(input_ids, attention_mask, token_type_ids, **inputs)[0]
    logits = self.cls(x, self.mobius.embeddings.word_embeddings.weight)
    loss = None
    if labels is not None:
      loss = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=-100)
    return MaskedLMOutput(loss=loss, logits=logits)


class MobiusForSequenceClassification(MobiusPreTrainedModel):
  """The encoder and a classifier (num_labels = 1: regression). BERT: dropout and dense
  `classifier` on the pooled output; RoFormer: on the first token, dropout, dense
  `classifier.dense`, activation, dropout, dense `classifier.out_proj`."""

  def __init__(self, config: MobiusConfig):
    super().__init__(config)
    self.num_labels = config.num_labels
    self.mobius = MobiusModel(config)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    width = config.hidden_size
    if config.family == "bert":
      self.classifier = nn.Linear(width, config.num_labels)
    else:
      self.classifier = nn.Module()
      self.classifier.dense = nn.Linear(width, width)
      self.classifier.out_proj = nn.Linear(width, config.num_labels)
    self.post_init()

  def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **inputs):
    """Logits `[B, K]`; with labels (int `[B]`, or float for regression) the mean loss: squared
    error for one label, else cross-entropy. Other inputs as in `MobiusModel`."""
    out = self.mobius(input_ids, attention_mask, token_type_ids, **inputs)
    if self.config.family == "bert":
      logits = self.classifier(self.dropout(out[1]))
    else:
      head = self.classifier
      x = self.dropout(ACTIVATIONS[self.config.hidden_act](head.dense(self.dropout(out[0][:, 0]))))
      logits = head.out_proj(x)
    loss = None
    if labels is not None and self.num_labels == 1:
      loss = F.mse_loss(logits.squeeze(-1), labels.float())
    elif labels is not None:
      loss = F.cross_entropy(logits, labels)
    return SequenceClassifierOutput(loss=loss, logits=logits)
