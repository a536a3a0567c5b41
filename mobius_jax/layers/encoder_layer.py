"""Encoder layers: BERT's post-LayerNorm layer and its complex (Möbius) counterpart.

Shapes use the package's letters (`mobius_jax`): B batch, L length, D model width, F
feed-forward width, P selected tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from mobius_jax.layers._dropout import Dropout
from mobius_jax.layers.attention import MobiusSelfAttention, SelfAttention
from mobius_jax.layers.config import LayerConfig
from mobius_jax.layers.dense import dense, partitioned
from mobius_jax.ops import Pair, take_tokens
from mobius_jax.sharding import ACT_MLP, EMBED, MLP, STREAM_AXES

ACTIVATION_FNS = {
  "gelu": lambda x: nn.gelu(x, approximate=False),
  "gelu_new": lambda x: nn.gelu(x, approximate=True),
  "relu": nn.relu,
}


def layer_norm(config: LayerConfig, name: str | None = None, axis: str = EMBED) -> nn.LayerNorm:
  """LayerNorm with BERT's epsilon; float32 statistics, the variance as E[x²] − E[x]².

  The one-pass variance (flax's default, as in HF's Flax BERT) is the faster one on a CPU
  (benchmarks/README.md); the outputs match HF's PyTorch BERT to the parity tests' tolerance.
  """
  return nn.LayerNorm(
    epsilon=config.layer_norm_eps,
    scale_init=partitioned(nn.initializers.ones_init(), (axis,)),
    bias_init=partitioned(nn.initializers.zeros_init(), (axis,)),
    name=name,
    **config.dtypes,
  )


class FeedForward(nn.Module):
  """dense(D → F), activation, dense(F → D): submodules `intermediate` and `output`."""

  config: LayerConfig

  @nn.compact
  def __call__(self, x):
    """x: `[B, L, D]` → `[B, L, D]`."""
    cfg = self.config
    h = dense(cfg.intermediate_size, (EMBED, MLP), name="intermediate", **cfg.dense_args)(x)
    h = nn.with_logical_constraint(ACTIVATION_FNS[cfg.hidden_act](h), (*STREAM_AXES[:2], ACT_MLP))
    return dense(x.shape[-1], (MLP, EMBED), name="output", **cfg.dense_args)(h)


class EncoderLayer(nn.Module):
  """BERT's layer: x ← LN(x + attention(x)), x ← LN(x + feed_forward(x)), with dropout.

  Submodules: `attention` (`SelfAttention`), `attention_norm`, `mlp` (`FeedForward`),
  `mlp_norm`.
  """

  config: LayerConfig
  attention_fn: Callable | None = None

  @nn.compact
  def __call__(
    self, x, *, mask=None, positions=None, output_indices=None, deterministic: bool = True
  ):
    """x: `[B, L, D]` → `[B, L, D]` (`[B, P, D]` at `output_indices` `[B, P]`).

    mask, positions and output_indices: as in `SelfAttention`.
    """
    cfg = self.config
    dropout = Dropout(cfg.hidden_dropout, deterministic=deterministic)
    a = SelfAttention(cfg, self.attention_fn, name="attention")(
      x, mask=mask, positions=positions, output_indices=output_indices, deterministic=deterministic
    )
    if output_indices is not None:
      x = take_tokens(x, output_indices)
    x = layer_norm(cfg, "attention_norm")(x + dropout(a))
    x = layer_norm(cfg, "mlp_norm")(x + dropout(FeedForward(cfg, name="mlp")(x)))
    return nn.with_logical_constraint(x, STREAM_AXES)


class ComplexEncoderLayer(nn.Module):
  """The Möbius layer: Möbius attention, then BERT's residual blocks on each channel.

  The real and imaginary channels keep separate residual streams, LayerNorms and
  feed-forward blocks (the paper's doubled LayerNorm and feed-forward):
    (a_re, a_im) = MobiusSelfAttention(x_re, x_im)
    x_c ← LN_c(x_c + a_c), then x_c ← LN_c(x_c + FF_c(x_c)), for c in (real, imag).
  Submodules: `attention`, and `attention_norm_{real,imag}`, `mlp_{real,imag}`,
  `mlp_norm_{real,imag}`.
  """

  config: LayerConfig
  attention_fn: Callable | None = None

  @nn.compact
  def __call__(
    self, x: Pair, *, mask=None, positions=None, output_indices=None, deterministic: bool = True
  ) -> Pair:
    """x: pair of `[B, L, D]` → pair of `[B, L, D]` (`[B, P, D]` at `output_indices`).

    mask, positions and output_indices: as in `SelfAttention`.
    """
    cfg = self.config
    dropout = Dropout(cfg.hidden_dropout, deterministic=deterministic)
    attended = MobiusSelfAttention(cfg, self.attention_fn, name="attention")(
      x, mask=mask, positions=positions, output_indices=output_indices, deterministic=deterministic
    )
    if output_indices is not None:
      x = tuple(take_tokens(part, output_indices) for part in x)
    out = []
    for part, channel, a in zip(("real", "imag"), x, attended, strict=True):
      channel = layer_norm(cfg, f"attention_norm_{part}")(channel + dropout(a))
      f = FeedForward(cfg, name=f"mlp_{part}")(channel)
      channel = layer_norm(cfg, f"mlp_norm_{part}")(channel + dropout(f))
      out.append(nn.with_logical_constraint(channel, STREAM_AXES))
    return tuple(out)
