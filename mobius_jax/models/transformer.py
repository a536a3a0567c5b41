"""Encoders and task models: BERT, RoFormer, MöbiusBERT and MöbiusRoFormer.

Shapes use the package's letters (`mobius_jax`): B batch, L length, D model width (hidden
size), E embedding width, V vocabulary, P selected positions, K labels.

Parameter trees (names close to Hugging Face's, see `mobius_jax.models.hf`):
  Transformer        {embeddings, encoder: {layer_0, …}, pooler?}
  MaskedLM           {backbone: Transformer, mlm_head: {transform, transform_norm, bias}}
  SequenceClassifier {backbone: Transformer, classifier: …}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from mobius_jax.layers import ComplexEncoderLayer, EncoderLayer, dense, layer_norm
from mobius_jax.layers._dropout import Dropout
from mobius_jax.layers.dense import partitioned
from mobius_jax.layers.encoder_layer import ACTIVATION_FNS
from mobius_jax.models.config import ModelConfig
from mobius_jax.ops import padding_mask, sinusoidal_position_encoding
from mobius_jax.ops._xla_cpu import add_bias
from mobius_jax.sharding import CLASSES, EMBED, POSITIONS, STREAM_AXES, TOKEN_TYPES, VOCAB, WIDTH


class EncoderOutput(NamedTuple):
  sequence: jnp.ndarray  # [B, L, D]
  pooled: jnp.ndarray | None  # [B, D]: BERT's pooler (tanh dense of the first token), or None


class Embeddings(nn.Module):
  """Word, (BERT) position and token type embeddings: layer 0's input.

  The stream (vanilla layer 0) or real channel (Möbius layer 0) is LayerNorm `norm` of word +
  (BERT) position + type embeddings, with dropout; where E ≠ D (RoFormer), a dense
  `projection` maps it to the hidden size. A Möbius layer 0 also reads an imaginary channel,
  the position encoding (BERT's learned rows; RoFormer, which has none, the fixed sinusoids at
  the hidden width). With `mobius_embeddings="split"` (`ModelConfig.split_embeddings`) the
  positions leave the real channel's sum and the imaginary channel is their LayerNorm
  `position_norm`, with dropout: both channels start at unit scale.
  """

  config: ModelConfig

  def setup(self):
    cfg = self.config

    def table(rows, axis):
      return nn.Embed(
        rows,
        cfg.embedding_width,
        embedding_init=partitioned(nn.initializers.normal(cfg.initializer_range), (axis, EMBED)),
        **cfg.dtypes,
      )

    self.word_embeddings = table(cfg.vocab_size, VOCAB)
    if cfg.family == "bert":
      self.position_embeddings = table(cfg.max_position_embeddings, POSITIONS)
    self.token_type_embeddings = table(cfg.type_vocab_size, TOKEN_TYPES)
    self.norm = layer_norm(cfg)
    if cfg.split_embeddings:
      self.position_norm = layer_norm(cfg)  # at the hidden width, as the imaginary channel
    self.dropout = Dropout(cfg.hidden_dropout)
    if cfg.embedding_width != cfg.hidden_size:
      self.projection = dense(cfg.hidden_size, (WIDTH, EMBED), **cfg.dense_args)

  def __call__(self, input_ids, token_type_ids, positions, deterministic: bool = True):
    """input_ids, token_type_ids: int `[B, L]`; positions: int `[B, L]` or `[L]`.

    Returns:
      (`[B, L, D]` stream or real channel, `[B, L, D]` imaginary channel for a Möbius layer 0,
      or None where layer 0 is vanilla).
    """
    cfg = self.config
    x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
    position_embeddings = None
    if cfg.family == "bert":
      position_embeddings = self.position_embeddings(positions)
      if not cfg.split_embeddings:
        x = x + position_embeddings
    x = self.dropout(self.norm(x), deterministic=deterministic)
    if cfg.embedding_width != cfg.hidden_size:
      x = self.projection(x)
    x = nn.with_logical_constraint(x, STREAM_AXES)
    if cfg.layer_kinds[0] != "M":
      return x, None
    if position_embeddings is None:  # RoFormer: the fixed sinusoids, at the hidden width
      position_embeddings = sinusoidal_position_encoding(positions, cfg.hidden_size)
    if cfg.split_embeddings:
      position_embeddings = self.position_norm(position_embeddings)  # on [(B,) L, D] rows
    imag = jnp.broadcast_to(position_embeddings, x.shape).astype(x.dtype)
    if cfg.split_embeddings:
      imag = self.dropout(imag, deterministic=deterministic)  # after broadcasting: per example
    return x, nn.with_logical_constraint(imag, STREAM_AXES)

  def attend(self, x):
    """Logits over the vocabulary from `[..., E]` features, with the tied word table."""
    return self.word_embeddings.attend(x)


class Encoder(nn.Module):
  """The stack of layers `config.layer_kinds`, with the transitions between the kinds.

  Entering a Möbius layer from a real stream: the stream is the real channel; the imaginary
  channel is `imag_input` (position information) for the first layer, and the first layer's
  (real) input `x` for later ones: the embeddings' output, or with split embeddings the token
  embeddings LayerNorm(word + type), the paper's "token embeddings (the first block's real
  input)". Consecutive Möbius layers pass both channels on. Leaving (to a vanilla layer, or at
  the end): real + imaginary. With `mobius_imag_gate` the imaginary channel taken from the real
  side is gated (`imag_gate_{i}`, starting at 0).
  """

  config: ModelConfig
  attention_fn: Callable | None = None
  mobius_attention_fn: Callable | None = None

  @nn.compact
  def __call__(
    self, x, *, imag_input, mask, positions, output_indices=None, deterministic: bool = True
  ):
    """x: `[B, L, D]`; imag_input: `[B, L, D]`, or None where layer 0 is vanilla; mask:
    broadcastable to `[B, N, L, L]` → `[B, L, D]`.

    With `output_indices` (int `[B, P]`) the last layer computes its output at those tokens
    only → `[B, P, D]`.
    """
    first_input, stream = x, x
    last = len(self.config.layer_kinds) - 1
    for i, kind in enumerate(self.config.layer_kinds):
      name = f"layer_{i}"
      kwargs = dict(
        mask=mask,
        positions=positions,
        output_indices=output_indices if i == last else None,
        deterministic=deterministic,
      )
      if kind == "M":
        if not isinstance(stream, tuple):
          stream = (stream, self._imag_entry(imag_input if i == 0 else first_input, i))
        stream = ComplexEncoderLayer(self.config, self.mobius_attention_fn, name=name)(
          stream, **kwargs
        )
      else:
        if isinstance(stream, tuple):
          stream = stream[0] + stream[1]
        stream = EncoderLayer(self.config, self.attention_fn, name=name)(stream, **kwargs)
    return stream[0] + stream[1] if isinstance(stream, tuple) else stream

  def _imag_entry(self, imag, layer: int):
    """The imaginary channel layer `layer` takes from the real side: with `mobius_imag_gate`,
    times its learned gate `imag_gate_{layer}` `[D]`, which starts at 0."""
    if not self.config.mobius_imag_gate:
      return imag
    zeros = partitioned(nn.initializers.zeros_init(), (EMBED,))
    gate = self.param(f"imag_gate_{layer}", zeros, imag.shape[-1:], self.config.weight_dtype)
    return imag * gate.astype(imag.dtype)


class Transformer(nn.Module):
  """The encoder model (Hugging Face's `BertModel` / `RoFormerModel`).

  Attributes:
    config: the model's `ModelConfig`.
    with_pooler: BERT's pooler (ignored for RoFormer, which has none).
    attention_fn: replaces the vanilla layers' attention function (default
      `mobius_jax.dot_product_attention`).
    mobius_attention_fn: replaces the Möbius layers' attention function (default
      `mobius_jax.mobius_dot_product_attention`).
  """

  config: ModelConfig
  with_pooler: bool = True
  attention_fn: Callable | None = None
  mobius_attention_fn: Callable | None = None

  def setup(self):
    cfg = self.config
    self.embeddings = Embeddings(cfg)
    self.encoder = Encoder(
      cfg, attention_fn=self.attention_fn, mobius_attention_fn=self.mobius_attention_fn
    )
    if self.has_pooler:
      self.pooler = dense(cfg.hidden_size, (EMBED, WIDTH), **cfg.dense_args)

  @property
  def has_pooler(self) -> bool:
    return self.with_pooler and self.config.family == "bert"

  def __call__(
    self,
    input_ids,
    *,
    attention_mask=None,
    token_type_ids=None,
    position_ids=None,
    output_indices=None,
    deterministic: bool = True,
  ) -> EncoderOutput:
    """Encodes a batch.

    Args:
      input_ids: int `[B, L]`.
      attention_mask: `[B, L]`, non-zero at real tokens, zero at padding; default all real.
      token_type_ids: int `[B, L]`; default zeros.
      position_ids: int `[B, L]` or `[L]`; default 0 … L − 1.
      output_indices: optional int `[B, P]`: the last layer computes its output at these
        tokens only (its keys and values still see every token): the sequence output is
        `[B, P, D]`, the same rows as the full output's at those tokens, for less work.
        Not with the pooler (it reads the first token).
      deterministic: no dropout when True; otherwise needs a "dropout" PRNG stream.

    Returns:
      `EncoderOutput(sequence [B, L, D] or [B, P, D], pooled [B, D] or None)`.
    """
    if output_indices is not None and self.has_pooler:
      raise ValueError(
        "output_indices leaves out the first token that BERT's pooler reads; build the "
        "Transformer with with_pooler=False to use it."
      )
    length = input_ids.shape[-1]
    positions = jnp.arange(length) if position_ids is None else position_ids
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    mask = None if attention_mask is None else padding_mask(attention_mask)
    x, imag_input = self.embeddings(input_ids, token_type_ids, positions, deterministic)
    x = self.encoder(
      x,
      imag_input=imag_input,
      mask=mask,
      positions=positions,
      output_indices=output_indices,
      deterministic=deterministic,
    )
    pooled = jnp.tanh(self.pooler(x[:, 0])) if self.has_pooler else None
    return EncoderOutput(x, pooled)


class MaskedLM(nn.Module):
  """Transformer + masked-LM head, the decoder tied to the word embeddings (HF's *ForMaskedLM).

  Head: dense(D → E), activation, LayerNorm, then logits = features · word_tableᵀ + bias.
  """

  config: ModelConfig
  attention_fn: Callable | None = None
  mobius_attention_fn: Callable | None = None

  def setup(self):
    cfg = self.config
    self.backbone = Transformer(
      cfg,
      with_pooler=False,
      attention_fn=self.attention_fn,
      mobius_attention_fn=self.mobius_attention_fn,
    )
    self.mlm_head = MaskedLMHead(cfg)

  def __call__(self, input_ids, *, masked_positions=None, deterministic: bool = True, **inputs):
    """Logits over the vocabulary.

    Args:
      input_ids: int `[B, L]`.
      masked_positions: optional int `[B, P]`: compute logits only at these positions (the
        output layer over V words is most of an MLM step's cost; MosaicBERT does the same),
        and the last layer's output only there too (`Transformer`'s `output_indices`).
      deterministic: as in `Transformer`.
      **inputs: `attention_mask`, `token_type_ids`, `position_ids`, as in `Transformer`.

    Returns:
      float `[B, L, V]`, or `[B, P, V]` with `masked_positions`.
    """
    x = self.backbone(
      input_ids, output_indices=masked_positions, deterministic=deterministic, **inputs
    ).sequence
    return self.mlm_head(x, self.backbone.embeddings.attend)


class MaskedLMHead(nn.Module):
  """dense(D → E) `transform`, activation, LayerNorm `transform_norm`, tied decoder + `bias`."""

  config: ModelConfig

  @nn.compact
  def __call__(self, x, attend: Callable):
    """x: `[..., D]`; attend: the word table's `attend` → `[..., V]` logits."""
    cfg = self.config
    x = dense(cfg.embedding_width, (EMBED, WIDTH), name="transform", **cfg.dense_args)(x)
    x = layer_norm(cfg, "transform_norm", axis=WIDTH)(ACTIVATION_FNS[cfg.hidden_act](x))
    zeros = partitioned(nn.initializers.zeros_init(), (VOCAB,))
    bias = self.param("bias", zeros, (cfg.vocab_size,), cfg.weight_dtype)
    return add_bias(attend(x), bias)


class SequenceClassifier(nn.Module):
  """Transformer + a classification or regression head (HF's *ForSequenceClassification).

  BERT: dropout and a dense `classifier` on the pooled output. RoFormer: on the first token,
  dropout, dense `dense`, activation, dropout, dense `out_proj`. `num_labels=1` is regression.
  """

  config: ModelConfig
  num_labels: int
  attention_fn: Callable | None = None
  mobius_attention_fn: Callable | None = None

  @nn.compact
  def __call__(self, input_ids, *, deterministic: bool = True, **inputs):
    """input_ids: int `[B, L]`; other inputs as in `Transformer` → logits `[B, K]`."""
    cfg = self.config
    backbone = Transformer(
      cfg,
      with_pooler=True,
      attention_fn=self.attention_fn,
      mobius_attention_fn=self.mobius_attention_fn,
      name="backbone",
    )
    out = backbone(input_ids, deterministic=deterministic, **inputs)
    dropout = Dropout(cfg.hidden_dropout, deterministic=deterministic)
    if cfg.family == "bert":
      return dense(self.num_labels, (EMBED, CLASSES), name="classifier", **cfg.dense_args)(
        dropout(out.pooled)
      )
    head = ClassificationHead(cfg, self.num_labels, name="classifier")
    return head(out.sequence[:, 0], deterministic=deterministic)


class ClassificationHead(nn.Module):
  """RoFormer's head: dropout, dense `dense`, activation, dropout, dense `out_proj`."""

  config: ModelConfig
  num_labels: int

  @nn.compact
  def __call__(self, x, *, deterministic: bool = True):
    """x: `[B, D]` first-token features → `[B, K]`."""
    cfg = self.config
    dropout = Dropout(cfg.hidden_dropout, deterministic=deterministic)
    x = dense(cfg.hidden_size, (EMBED, WIDTH), name="dense", **cfg.dense_args)(dropout(x))
    x = dropout(ACTIVATION_FNS[cfg.hidden_act](x))
    return dense(self.num_labels, (WIDTH, CLASSES), name="out_proj", **cfg.dense_args)(x)
