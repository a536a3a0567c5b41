"""Self-attention layers: vanilla (BERT, RoFormer) and Möbius (complex).

Shapes use the package's letters (`mobius_jax`): B batch, L length, D model width, N heads,
H head dim (real width of a vanilla head; a Möbius head has C = H complex dims), P selected
tokens.

Both layers take the attention function as an attribute (`attention_fn`), so other kernels
plug in without new modules, and both `sow` their attention weights `[B, N, L, L]` into the
`intermediates` collection when it is mutable (for analysis; costs an extra score computation).

Both can compute their output at some tokens only (`output_indices`, int `[B, P]`): queries
at those tokens, keys and values at all. A masked-LM's last layer needs no more (see
`mobius_jax.models.MaskedLM`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mobius_jax.layers.config import LayerConfig
from mobius_jax.layers.dense import ComplexDense, ComplexScale, dense
from mobius_jax.layers.mobius import MobiusMap
from mobius_jax.ops import (
  Pair,
  apply_complex_rope,
  apply_rope,
  attention_logits,
  attention_weights,
  dot_product_attention,
  mobius_attention_logits,
  mobius_dot_product_attention,
  query_positions,
  take_tokens,
)
from mobius_jax.sharding import (
  ACT_BATCH,
  ACT_HEAD_DIM,
  ACT_HEADS,
  ACT_LENGTH,
  EMBED,
  HEADS,
  STREAM_AXES,
)

HEAD_AXES = (ACT_BATCH, ACT_LENGTH, ACT_HEADS, ACT_HEAD_DIM)


def _split_heads(x: jnp.ndarray, num_heads: int) -> jnp.ndarray:
  """[B, L, D] → [B, L, N, H], constrained to the head sharding."""
  x = x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)
  return nn.with_logical_constraint(x, HEAD_AXES)


def _merge_heads(x: jnp.ndarray) -> jnp.ndarray:
  """[B, L, N, H] → [B, L, D]."""
  return x.reshape(*x.shape[:-2], -1)


def _queried(x, positions, output_indices):
  """(query tokens, their position ids): `x` (`[B, L, D]` or a pair) at `output_indices`.

  All tokens, and `positions` as given, when `output_indices` is None.
  """
  if output_indices is None:
    return x, positions
  x_query = jax.tree.map(lambda part: take_tokens(part, output_indices), x)
  return x_query, query_positions(positions, output_indices)


class _Attention(nn.Module):
  """What both attention layers share: the config, dropout and the weight sowing."""

  config: LayerConfig
  attention_fn: Callable | None = None

  def _dropout(self, deterministic: bool):
    """(rate, rng) for the attention weights' dropout."""
    rate = self.config.attention_dropout
    if deterministic or rate == 0.0:
      return 0.0, None
    return rate, self.make_rng("dropout")

  def _sow_weights(self, logits_fn: Callable[[], jnp.ndarray], mask) -> None:
    if self.is_mutable_collection("intermediates"):
      self.sow("intermediates", "attention_weights", attention_weights(logits_fn(), mask=mask))


class SelfAttention(_Attention):
  """BERT's multi-head self-attention, with optional rotary positions (RoFormer).

  Submodules `query`, `key`, `value` (`[D, D]` kernels with bias) and `output` (`[D, D]`), as in
  Hugging Face's BERT. `attention_fn` defaults to `mobius_jax.dot_product_attention` with the
  config's implementation.
  """

  @nn.compact
  def __call__(
    self, x, *, mask=None, positions=None, output_indices=None, deterministic: bool = True
  ):
    """Self-attention of `x`, at every token or at `output_indices` only.

    Args:
      x: `[B, L, D]`.
      mask: boolean, broadcastable to `[B, N, L, L]` (`[B, N, P, L]` with `output_indices`).
      positions: `[(B,) L]` position ids, for rotary positions; default 0 … L − 1.
      output_indices: optional int `[B, P]`: the tokens to compute the output at.
      deterministic: no attention dropout when True.

    Returns:
      `[B, L, D]`, or `[B, P, D]` with `output_indices`.
    """
    cfg = self.config
    x = nn.with_logical_constraint(x, STREAM_AXES)
    x_query, query_pos = _queried(x, positions, output_indices)
    hidden = x.shape[-1]
    projections = {
      name: dense(hidden, (EMBED, HEADS), name=name, **cfg.dense_args)
      for name in ("query", "key", "value")
    }
    q, k, v = (
      _split_heads(projections[name](inputs), cfg.num_heads)
      for name, inputs in (("query", x_query), ("key", x), ("value", x))
    )
    if cfg.rotary:
      q = apply_rope(q, query_pos, base=cfg.rotary_base)
      k = apply_rope(k, positions, base=cfg.rotary_base)
    self._sow_weights(lambda: attention_logits(q, k), mask)
    attention_fn = self.attention_fn or functools.partial(
      dot_product_attention, implementation=cfg.attention_implementation
    )
    rate, rng = self._dropout(deterministic)
    out = attention_fn(q, k, v, mask=mask, dropout_rate=rate, dropout_rng=rng)
    return dense(hidden, (HEADS, EMBED), name="output", **cfg.dense_args)(_merge_heads(out))


class MobiusSelfAttention(_Attention):
  """MöbiusAttention on a complex input, its real and imaginary channels given as a pair.

  Heads 0 … M − 1 (M = `config.mobius_heads`) are Möbius heads: their query is a learned
  Möbius map of the input, per dimension (`mobius_query="elementwise"`, the paper's: query
  dimension j = M_j(ρ_j), so head h reads input dimensions h·C … (h + 1)·C − 1; no query
  matrix) or after a complex-linear map (`"linear"`). The other heads use a complex-linear
  query. Keys, values and the output projection are complex for all heads: full complex dense
  layers, or per-dimension complex scalings (`mobius_key_value="elementwise"`). Scores follow
  `config.mobius_score`; with `config.rotary`, complex queries and keys are multiplied by
  e^{i m θ_j} (MöbiusRoFormer), so the scores depend on relative positions only.

  Submodules: `query_mobius` (a `MobiusMap`), `query_linear` (only for "linear"), `query` (the
  non-Möbius heads), `key`, `value`, `output` (`ComplexDense` or `ComplexScale`).
  """

  @nn.compact
  def __call__(
    self, x: Pair, *, mask=None, positions=None, output_indices=None, deterministic: bool = True
  ):
    """x: pair of `[B, L, D]`; the other arguments as in `SelfAttention`.

    Returns:
      Pair of `[B, L, D]`, or of `[B, P, D]` with `output_indices`.
    """
    cfg = self.config
    # Pinned, not left to sharding propagation: XLA has miscompiled this layer on a 2×2×2 CPU
    # mesh without it (tests/layers compare the layer on that mesh with one device).
    x = tuple(nn.with_logical_constraint(part, STREAM_AXES) for part in x)
    x_query, query_pos = _queried(x, positions, output_indices)
    hidden = x[0].shape[-1]
    mobius_dims = cfg.mobius_heads * cfg.head_dim

    queries = []
    if mobius_dims:
      if cfg.mobius_query == "linear":
        linear = ComplexDense(mobius_dims, (EMBED, HEADS), name="query_linear", **cfg.dense_args)
        z = linear(x_query)
      else:
        z = tuple(part[..., :mobius_dims] for part in x_query)
      mobius = MobiusMap(
        initialization=cfg.mobius_init,
        init_noise=cfg.mobius_init_noise,
        eps=cfg.mobius_eps,
        name="query_mobius",
        **cfg.dtypes,
      )
      queries.append(mobius(z))
    if mobius_dims < hidden:
      query = ComplexDense(hidden - mobius_dims, (EMBED, HEADS), name="query", **cfg.dense_args)
      queries.append(query(x_query))
    q = tuple(jnp.concatenate([query[i] for query in queries], axis=-1) for i in range(2))

    def project(name):
      if cfg.mobius_key_value == "elementwise":
        return ComplexScale(axis=HEADS, name=name, **cfg.dtypes)
      return ComplexDense(hidden, (EMBED, HEADS), name=name, **cfg.dense_args)

    k, v = project("key")(x), project("value")(x)
    q, k, v = (tuple(_split_heads(part, cfg.num_heads) for part in t) for t in (q, k, v))
    if cfg.rotary:
      q = apply_complex_rope(q, query_pos, base=cfg.rotary_base)
      k = apply_complex_rope(k, positions, base=cfg.rotary_base)
    score = cfg.mobius_score
    self._sow_weights(lambda: mobius_attention_logits(q, k, score=score), mask)
    attention_fn = self.attention_fn or functools.partial(
      mobius_dot_product_attention, implementation=cfg.attention_implementation
    )
    rate, rng = self._dropout(deterministic)
    out = attention_fn(q, k, v, score=score, mask=mask, dropout_rate=rate, dropout_rng=rng)
    out = tuple(_merge_heads(part) for part in out)
    return ComplexDense(hidden, (HEADS, EMBED), name="output", **cfg.dense_args)(out)
