"""Attention weights of a model on given inputs, and per-head statistics.

The paper reads its heat-maps as Möbius heads "learning what to forget": giving many token
pairs almost no weight. `attention_statistics` puts numbers on that, per head, with each head
labelled by kind so that Möbius heads can be set against the others.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mobius_jax.analysis.maps import encoder_params
from mobius_jax.models.config import ModelConfig
from mobius_jax.models.transformer import Transformer

HEAD_KINDS = ("vanilla", "mobius", "complex")
"""vanilla: a head of a vanilla layer; mobius: a Möbius head; complex: a complex-linear head of
a Möbius layer."""


def head_kinds(config: ModelConfig) -> list[list[str]]:
  """The kind of every head: `[num_layers][num_heads]` names from `HEAD_KINDS`."""
  kinds = []
  for kind in config.layer_kinds:
    if kind == "V":
      kinds.append(["vanilla"] * config.num_heads)
    else:
      m = config.mobius_heads
      kinds.append(["mobius"] * m + ["complex"] * (config.num_heads - m))
  return kinds


def model_attention_weights(
  params: dict, config: ModelConfig, input_ids, *, attention_mask=None, token_type_ids=None
) -> list[np.ndarray]:
  """Every layer's attention weights on a batch (no dropout).

  Args:
    params: a `Transformer`'s, `MaskedLM`'s or `SequenceClassifier`'s parameters.
    config: the model's config.
    input_ids: int `[B, L]`; attention_mask: `[B, L]`, zero at padding; token_type_ids: `[B, L]`.

  Returns:
    One float32 `[B, N, L, L]` array per layer (query × key), rows summing to 1.
  """
  params = nn.meta.unbox(params)
  backbone = params.get("backbone", params)
  encoder_params(backbone)  # checks that these are an encoder's parameters
  model = Transformer(config, with_pooler="pooler" in backbone)
  _, state = jax.jit(model.apply, static_argnames="mutable")(
    {"params": backbone},
    jnp.asarray(input_ids),
    attention_mask=None if attention_mask is None else jnp.asarray(attention_mask),
    token_type_ids=None if token_type_ids is None else jnp.asarray(token_type_ids),
    mutable="intermediates",
  )
  encoder = state["intermediates"]["encoder"]
  return [
    np.asarray(encoder[f"layer_{i}"]["attention"]["attention_weights"][0], np.float32)
    for i in range(config.num_layers)
  ]


def attention_statistics(
  weights: list[np.ndarray],
  attention_mask: np.ndarray,
  config: ModelConfig,
  *,
  near_zero: float = 0.1,
) -> dict:
  """Entropy and near-zero share of each head's attention, and their means by head kind.

  Both are computed over real query tokens and their real keys only (n of them in a row):
  - `entropy`: −Σ p log p in nats, averaged over queries; `normalized_entropy` divides it by
    log n (1 = uniform attention, 0 = all weight on one key);
  - `near_zero_share`: the share of (query, key) pairs whose weight is below `near_zero` / n,
    i.e. below a tenth (by default) of what uniform attention would give.

  Args:
    weights: from `model_attention_weights`, one `[B, N, L, L]` array per layer.
    attention_mask: `[B, L]`, non-zero at real tokens.
    config: the model's config (for the head kinds).
    near_zero: the threshold, as a fraction of the uniform weight 1 / n.

  Returns:
    {"near_zero": near_zero, "heads": [one dict per layer and head: layer, head, kind, entropy,
    normalized_entropy, near_zero_share], "by_kind": {kind: means of the three over its heads}}.
  """
  real = np.asarray(attention_mask) != 0  # [B, L]
  n = real.sum(axis=1).astype(np.float64)  # [B]: real tokens per row
  pairs = real[:, None, :, None] & real[:, None, None, :]  # [B, 1, L, L]: real query and key
  log_n = np.log(np.maximum(n, 2))[:, None]  # [B, 1]; a one-token row counts as log 2
  kinds = head_kinds(config)
  heads = []
  for layer, w in enumerate(weights):
    w = np.where(pairs, np.asarray(w, np.float64), 0.0)  # [B, N, L, L]
    entropy_sum = -(w * np.log(np.where(w > 0, w, 1))).sum(axis=(2, 3))  # [B, N]
    entropy = entropy_sum.sum(0) / n.sum()
    normalized = (entropy_sum / log_n).sum(0) / n.sum()
    near = ((w < near_zero / n[:, None, None, None]) & pairs).sum(axis=(2, 3)).sum(0)
    near = near / (n**2).sum()
    for head in range(w.shape[1]):
      heads.append(
        {
          "layer": layer,
          "head": head,
          "kind": kinds[layer][head],
          "entropy": float(entropy[head]),
          "normalized_entropy": float(normalized[head]),
          "near_zero_share": float(near[head]),
        }
      )
  by_kind = {}
  for kind in HEAD_KINDS:
    group = [h for h in heads if h["kind"] == kind]
    if group:
      by_kind[kind] = {
        "heads": len(group),
        **{
          key: float(np.mean([h[key] for h in group]))
          for key in ("entropy", "normalized_entropy", "near_zero_share")
        },
      }
  return {"near_zero": near_zero, "heads": heads, "by_kind": by_kind}
