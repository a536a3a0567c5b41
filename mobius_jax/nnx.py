"""Flax NNX versions of the layers and models: the linen modules inside `flax.nnx.bridge.ToNNX`.

    from flax import nnx
    import mobius_jax.nnx

    model = mobius_jax.nnx.MaskedLM(config, rngs=nnx.Rngs(0, dropout=1))
    logits = model(ids, attention_mask=mask)  # [B, L, V], as the linen MaskedLM's

Why the bridge and not native NNX modules: the maths stays in one place. The linen layers are
the single definition of every choice the paper leaves open (docs/reconstruction.md), of the
fused attention paths and of the sharding annotations; native copies would double that code and
let the two drift apart. Through the bridge an NNX model is the linen model, with
  - `nnx.Param` leaves at the linen paths: `nnx.state(model, nnx.Param)` is the linen `params`
    tree (`linen_params` and `load_linen_params` convert), so what reads or writes linen params
    (the Hugging Face conversion `mobius_jax.models.hf`, checkpoints, the analysis) serves both;
  - `nnx.split` / `nnx.merge`, `nnx.jit`, `nnx.grad` and `nnx.Optimizer(model, tx,
    wrt=nnx.Param)` working as on any NNX module;
  - dropout (the call's `deterministic=False`, as in linen) with a fresh key at each call from
    the module's `nnx.Rngs`, its "dropout" stream (else its default one), or from
    `rngs=nnx.Rngs(dropout=…)` given to the call: the same key drops what the linen module drops;
  - the logical axis names (`mobius_jax.sharding`) as each parameter's `out_sharding`, so that
    `nn.logical_to_mesh_sharding(nnx.get_partition_spec(state), mesh, DEFAULT_RULES)`, with
    `state = nnx.state(model, nnx.Param)`, gives the shardings to `jax.device_put` the state
    with (then `nnx.update(model, state)`).
What it does not give: `model.train()` / `model.eval()` (dropout is the call's argument). The
attention weights come, as in linen, from the call's `mutable=["intermediates"]`; the module then
keeps them, to read with `nnx.pop(model, nnx.Intermediate)`. Needs flax ≥ 0.12.

Models create their parameters at construction (their shapes follow from the config alone);
layers, whose shapes follow from the input width, from sample inputs: `layer.lazy_init(x)`.
Constructor arguments are those of the linen module of the same name, plus `rngs`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp
from flax import nnx
from flax.traverse_util import flatten_dict

from mobius_jax import layers, models


class _Bridged(nnx.bridge.ToNNX):
  """The linen module `linen_type(*args, **fields)` as an NNX module; `lazy_init` creates its
  parameters."""

  linen_type: ClassVar[type[nn.Module]]

  def __init__(self, *args: Any, rngs: nnx.Rngs, **fields: Any):
    super().__init__(self.linen_type(*args, **fields), rngs)

  def lazy_init(self, *args: Any, **kwargs: Any) -> _Bridged:
    """Creates the parameters from sample inputs (those of `__call__`) → the module itself.

    Compiled, as running the linen init op by op takes twice as long; eager sharding off, as the
    parameters' sharding names are logical ones, which name no mesh axis until rules map them.
    """
    with nnx.use_eager_sharding(False):
      nnx.jit(lambda module: nnx.bridge.lazy_init(module, *args, **kwargs))(self)
    return self


class _Model(_Bridged):
  """A model: its parameters are created at construction, from a one-token sample."""

  def __init__(self, *args: Any, rngs: nnx.Rngs, **fields: Any):
    super().__init__(*args, rngs=rngs, **fields)
    self.lazy_init(jnp.zeros((1, 1), jnp.int32))


class ComplexDense(_Bridged):
  """`mobius_jax.layers.ComplexDense`; `lazy_init(z)`, z a pair of `[..., in]` arrays."""

  linen_type = layers.ComplexDense


class ComplexScale(_Bridged):
  """`mobius_jax.layers.ComplexScale`; `lazy_init(z)`, z a pair of `[..., dims]` arrays."""

  linen_type = layers.ComplexScale


class MobiusMap(_Bridged):
  """`mobius_jax.layers.MobiusMap`; `lazy_init(z)`, z a pair of `[..., dims]` arrays."""

  linen_type = layers.MobiusMap


class FeedForward(_Bridged):
  """`mobius_jax.layers.FeedForward`; `lazy_init(x)`, x `[B, L, D]`."""

  linen_type = layers.FeedForward


class SelfAttention(_Bridged):
  """`mobius_jax.layers.SelfAttention`; `lazy_init(x)`, x `[B, L, D]`."""

  linen_type = layers.SelfAttention


class MobiusSelfAttention(_Bridged):
  """`mobius_jax.layers.MobiusSelfAttention`; `lazy_init(x)`, x a pair of `[B, L, D]`."""

  linen_type = layers.MobiusSelfAttention


class EncoderLayer(_Bridged):
  """`mobius_jax.layers.EncoderLayer`; `lazy_init(x)`, x `[B, L, D]`."""

  linen_type = layers.EncoderLayer


class ComplexEncoderLayer(_Bridged):
  """`mobius_jax.layers.ComplexEncoderLayer`; `lazy_init(x)`, x a pair of `[B, L, D]`."""

  linen_type = layers.ComplexEncoderLayer


class Transformer(_Model):
  """`mobius_jax.models.Transformer`: `Transformer(config, *, rngs, with_pooler=True, …)`."""

  linen_type = models.Transformer


class MaskedLM(_Model):
  """`mobius_jax.models.MaskedLM`: `MaskedLM(config, *, rngs, …)` → logits `[B, L, V]`."""

  linen_type = models.MaskedLM


class SequenceClassifier(_Model):
  """`mobius_jax.models.SequenceClassifier`: `SequenceClassifier(config, num_labels, *, rngs)`
  → logits `[B, K]`."""

  linen_type = models.SequenceClassifier


def linen_params(module: nnx.Module) -> dict:
  """A bridged module's parameters as its linen module's `params` dict of arrays, the tree of
  `nn.meta.unbox(linen_module.init(...))["params"]`."""
  return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def load_linen_params(module: nnx.Module, params) -> None:
  """Sets a bridged module's parameters to a linen `params` dict (boxed in axis metadata or not).

  Raises:
    ValueError: unless `params` has exactly the module's parameter paths and shapes.
  """
  params = nn.meta.unbox(params)
  state = nnx.state(module, nnx.Param)
  expected = {path: v.shape for path, v in flatten_dict(nnx.to_pure_dict(state)).items()}
  given = {path: v.shape for path, v in flatten_dict(params).items()}
  if given != expected:
    wrong = sorted(
      "/".join(path) + f": {given.get(path, 'missing')}, expected {expected.get(path, 'none')}"
      for path in given.keys() | expected.keys()
      if given.get(path) != expected.get(path)
    )
    raise ValueError(f"The params do not fit {type(module).__name__}: " + "; ".join(wrong))
  nnx.replace_by_pure_dict(state, params)
  nnx.update(module, state)


__all__ = [
  "ComplexDense",
  "ComplexEncoderLayer",
  "ComplexScale",
  "EncoderLayer",
  "FeedForward",
  "MaskedLM",
  "MobiusMap",
  "MobiusSelfAttention",
  "SelfAttention",
  "SequenceClassifier",
  "Transformer",
  "linen_params",
  "load_linen_params",
]
