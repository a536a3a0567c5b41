"""Multi-head attention, vanilla and Möbius (complex), as pure functions.

Shapes use the package's letters (`mobius_jax`): B batch, T query and S key length, N heads,
H head dim, C complex dims per head (a complex head of C dims has the real width 2C).

Masks are boolean, True where a query may attend to a key, and broadcast to `[B, N, T, S]`
(`padding_mask` builds one from a `[B, S]` validity array); biases are added to the logits
and broadcast likewise.
"""

from __future__ import annotations

from typing import Literal, get_args

import jax
import jax.numpy as jnp
from jax import Array

from mobius_jax.ops._xla_cpu import dropout
from mobius_jax.ops.types import Pair

ScoreMode = Literal["hermitian", "bilinear", "magnitude"]
# "splash": the Pallas TPU kernel of `mobius_jax.ops.tpu_attention` (interpret mode off TPU).
Kernel = Literal["xla", "cudnn", "einsum", "splash"]
Implementation = Kernel | None  # None: the fused kernel where it can run, else einsum
SCORE_MODES: tuple[str, ...] = get_args(ScoreMode)
IMPLEMENTATIONS: tuple[str | None, ...] = (None, *get_args(Kernel))


def padding_mask(valid: Array) -> Array:
  """Turns a `[B, S]` array (non-zero at real tokens) into a `[B, 1, 1, S]` attention mask."""
  return (valid != 0)[:, None, None, :]


def dot_product_attention(
  query: Array,
  key: Array,
  value: Array,
  *,
  bias: Array | None = None,
  mask: Array | None = None,
  scale: float | None = None,
  dropout_rate: float = 0.0,
  dropout_rng: Array | None = None,
  precision: jax.lax.PrecisionLike = None,
  implementation: Implementation = None,
) -> Array:
  """softmax(q kᵀ · scale + bias) v over `[B, T, N, H]` arrays, heads kept separate.

  The fused `jax.nn.dot_product_attention` runs whenever it can: no dropout and no explicit
  `precision` (the fused kernels follow `jax.default_matmul_precision`). Otherwise a plain
  einsum path runs; it materialises the `[B, N, T, S]` weights.

  Args:
    query: `[B, T, N, H]`.
    key: `[B, S, N, H]`.
    value: `[B, S, N, H]`.
    bias: optional logits bias, broadcastable to `[B, N, T, S]` (4-D).
    mask: optional boolean mask, broadcastable to `[B, N, T, S]` (4-D); True = attend.
    scale: logits scale; default 1 / √H.
    dropout_rate: dropout on the attention weights; when > 0, `dropout_rng` is required.
    dropout_rng: PRNG key for the dropout.
    precision: matmul precision of the einsum path; setting it selects that path.
    implementation: None (fused when possible, else einsum), `"xla"` or `"cudnn"` (forwarded
      to `jax.nn.dot_product_attention`), `"einsum"`, or `"splash"` (the splash attention
      kernel for TPU, `tpu_attention.splash_attention`: a padding mask only, no bias, dropout
      or precision).

  Returns:
    `[B, T, N, H]`, in the dtype of `query`.
  """
  scale = query.shape[-1] ** -0.5 if scale is None else scale
  if implementation == "splash":
    return _splash(query, key, value, bias, mask, scale, dropout_rate, precision)
  if _use_fused(implementation, dropout_rate, precision):
    return jax.nn.dot_product_attention(
      query, key, value, bias=bias, mask=mask, scale=scale, implementation=implementation
    )
  logits = attention_logits(query, key, scale=scale, precision=precision)
  weights = attention_weights(logits, bias, mask, dropout_rate, dropout_rng)
  return jnp.einsum("bnts,bsnh->btnh", weights.astype(value.dtype), value, precision=precision)


def mobius_dot_product_attention(
  query: Pair,
  key: Pair,
  value: Pair,
  *,
  score: ScoreMode = "hermitian",
  bias: Array | None = None,
  mask: Array | None = None,
  scale: float | None = None,
  dropout_rate: float = 0.0,
  dropout_rng: Array | None = None,
  precision: jax.lax.PrecisionLike = None,
  implementation: Implementation = None,
) -> Pair:
  """Attention on complex queries, keys and values given as `(real, imag)` pairs.

  Scores, for complex q, k of C dims (scaled by `scale`, default 1 / √(2C)):
    * `hermitian`: Re(q · conj(k)) = [Re q, Im q] · [Re k, Im k];
    * `bilinear`:  Re(q · k)       = [Re q, −Im q] · [Re k, Im k];
    * `magnitude`: |q · conj(k)|.
  The real softmax weights then average the complex values. `hermitian` and `bilinear` are
  real dot products of width 2C, so they run as ONE real attention over the concatenated
  parts, through `dot_product_attention` and its fused kernels. `magnitude` is not a dot
  product and always takes an einsum path. `mobius_attention_reference` computes the same
  with complex64 einsums.

  Args:
    query: pair of `[B, T, N, C]` arrays.
    key: pair of `[B, S, N, C]` arrays.
    value: pair of `[B, S, N, C]` arrays.
    score: one of `SCORE_MODES`.
    bias, mask, dropout_rate, dropout_rng, precision, implementation: as in
      `dot_product_attention`.
    scale: logits scale; default 1 / √(2C).

  Returns:
    Pair of `[B, T, N, C]` arrays: the complex output.
  """
  _check_choice("score", score, SCORE_MODES)
  num_dims = query[0].shape[-1]
  scale = (2 * num_dims) ** -0.5 if scale is None else scale
  if score == "magnitude":
    logits = mobius_attention_logits(query, key, score=score, scale=scale, precision=precision)
    weights = attention_weights(logits, bias, mask, dropout_rate, dropout_rng)
    return tuple(
      jnp.einsum("bnts,bsnc->btnc", weights.astype(v.dtype), v, precision=precision) for v in value
    )
  q_imag = -query[1] if score == "bilinear" else query[1]
  out = dot_product_attention(
    jnp.concatenate([query[0], q_imag], axis=-1),
    jnp.concatenate(key, axis=-1),
    jnp.concatenate(value, axis=-1),
    bias=bias,
    mask=mask,
    scale=scale,
    dropout_rate=dropout_rate,
    dropout_rng=dropout_rng,
    precision=precision,
    implementation=implementation,
  )
  return out[..., :num_dims], out[..., num_dims:]


def mobius_attention_reference(
  query: Array,
  key: Array,
  value: Array,
  *,
  score: ScoreMode = "hermitian",
  bias: Array | None = None,
  mask: Array | None = None,
  scale: float | None = None,
  precision: jax.lax.PrecisionLike = None,
) -> Array:
  """The definition of `mobius_dot_product_attention`, on complex arrays (no dropout).

  Args:
    query: complex `[B, T, N, C]`.
    key: complex `[B, S, N, C]`.
    value: complex `[B, S, N, C]`.
    score, bias, mask, scale, precision: as in `mobius_dot_product_attention`.

  Returns:
    complex `[B, T, N, C]`.
  """
  _check_choice("score", score, SCORE_MODES)
  scale = (2 * query.shape[-1]) ** -0.5 if scale is None else scale
  if score == "bilinear":
    scores = jnp.real(jnp.einsum("btnc,bsnc->bnts", query, key, precision=precision))
  else:
    scores = jnp.einsum("btnc,bsnc->bnts", query, jnp.conj(key), precision=precision)
    scores = jnp.abs(scores) if score == "magnitude" else jnp.real(scores)
  weights = attention_weights(scores * scale, bias, mask)
  return jnp.einsum("bnts,bsnc->btnc", weights.astype(value.dtype), value, precision=precision)


def attention_weights(
  logits: Array,
  bias: Array | None = None,
  mask: Array | None = None,
  dropout_rate: float = 0.0,
  dropout_rng: Array | None = None,
) -> Array:
  """Softmax over keys of scaled `[B, N, T, S]` logits, with bias, mask, dropout.

  Computed in float32 (in float64 for float64 logits, so that gradient checks can use it).
  """
  dtype = jnp.promote_types(logits.dtype, jnp.float32)
  logits = logits.astype(dtype)
  if bias is not None:
    logits = logits + bias
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(dtype).min)
  weights = jax.nn.softmax(logits, axis=-1)
  if dropout_rate > 0.0:
    if dropout_rng is None:
      raise ValueError("dropout_rate > 0 needs a dropout_rng; pass one, or dropout_rate=0.")
    weights = dropout(weights, dropout_rate, dropout_rng)
  return weights


def attention_logits(
  query: Array, key: Array, *, scale: float | None = None, precision: jax.lax.PrecisionLike = None
) -> Array:
  """Scaled dot products q · k of `[B, T, N, H]` queries and `[B, S, N, H]` keys.

  Returns:
    float32 `[B, N, T, S]` (float64 for float64 inputs); `scale` defaults to 1 / √H.
  """
  scale = query.shape[-1] ** -0.5 if scale is None else scale
  dtype = jnp.promote_types(jnp.result_type(query, key), jnp.float32)
  logits = jnp.einsum(
    "btnh,bsnh->bnts", query, key, precision=precision, preferred_element_type=dtype
  )
  return logits * scale


def mobius_attention_logits(
  query: Pair,
  key: Pair,
  *,
  score: ScoreMode = "hermitian",
  scale: float | None = None,
  precision: jax.lax.PrecisionLike = None,
) -> Array:
  """The scaled scores of `mobius_dot_product_attention`, before the softmax.

  Args:
    query: pair of `[B, T, N, C]` arrays.
    key: pair of `[B, S, N, C]` arrays.
    score: one of `SCORE_MODES`.
    scale: default 1 / √(2C).
    precision: matmul precision.

  Returns:
    float32 `[B, N, T, S]` (float64 for float64 inputs).
  """
  _check_choice("score", score, SCORE_MODES)
  (q_re, q_im), (k_re, k_im) = query, key
  scale = (2 * q_re.shape[-1]) ** -0.5 if scale is None else scale

  def dot(x, y):
    return attention_logits(x, y, scale=1.0, precision=precision)

  if score == "hermitian":
    return (dot(q_re, k_re) + dot(q_im, k_im)) * scale
  if score == "bilinear":
    return (dot(q_re, k_re) - dot(q_im, k_im)) * scale
  squared = (dot(q_re, k_re) + dot(q_im, k_im)) ** 2 + (dot(q_im, k_re) - dot(q_re, k_im)) ** 2
  # |q · conj(k)|; a zero score gets the gradient 0 (a subgradient), not sqrt's infinite one.
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0) * scale


def _splash(query, key, value, bias, mask, scale, dropout_rate, precision) -> Array:
  """`implementation="splash"`: the TPU kernel, after refusing what it cannot do."""
  from mobius_jax.ops.tpu_attention import splash_attention  # imports Pallas only when used

  unsupported = {
    "attention dropout (dropout_rate > 0)": dropout_rate > 0.0,
    "a bias": bias is not None,
    "an explicit precision": precision is not None,
  }
  refused = [what for what, given in unsupported.items() if given]
  if refused:
    raise ValueError(
      f"implementation='splash' (the TPU splash attention kernel) supports neither "
      f"{' nor '.join(refused)}; use implementation=None or 'einsum'."
    )
  return splash_attention(query, key, value, mask=mask, scale=scale)


def _use_fused(implementation, dropout_rate, precision) -> bool:
  _check_choice("implementation", implementation, IMPLEMENTATIONS)
  if implementation == "einsum":
    return False
  needs_einsum = dropout_rate > 0.0 or precision is not None
  if implementation is not None and needs_einsum:
    raise ValueError(
      f"implementation={implementation!r} (jax.nn.dot_product_attention) supports neither "
      "attention dropout nor an explicit precision; use implementation=None or 'einsum'."
    )
  return not needs_einsum


def _check_choice(name: str, value, allowed: tuple) -> None:
  if value not in allowed:
    raise ValueError(f"Unknown {name}={value!r}; expected one of {allowed}.")
