"""`flax.linen.Dropout`'s interface on the package's dropout (private: what the layers use)."""

from __future__ import annotations

import flax.linen as nn

from mobius_jax.ops._xla_cpu import dropout


class Dropout(nn.Module):
  """Dropout with the "dropout" PRNG stream; `deterministic` at construction or call.

  Drops the same entries as `flax.linen.Dropout` under the same name and key, so that runs keep
  their random streams; on XLA:CPU through the faster form of `ops._xla_cpu.dropout`.
  """

  rate: float
  deterministic: bool | None = None

  @nn.compact
  def __call__(self, x, deterministic: bool | None = None):
    """x: any shape → the same shape; unchanged when deterministic or at rate 0."""
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if deterministic or self.rate == 0.0:
      return x
    return dropout(x, self.rate, self.make_rng("dropout"))
