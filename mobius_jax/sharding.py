"""Logical axis names for parameters and activations, and the default rules to mesh axes.

Every parameter carries logical names (`nn.with_logical_partitioning`) and key activations
carry logical constraints (`nn.with_logical_constraint`); rules map the names to the mesh axes
`data`, `fsdp` and `tensor`. Parameter names and activation names are kept apart, so that,
for instance, a weight's `embed` dimension can be split over `fsdp` while the activations'
`act_embed` stays whole.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh

# Mesh axes.
DATA = "data"
FSDP = "fsdp"
TENSOR = "tensor"
MESH_AXES = (DATA, FSDP, TENSOR)

# Parameter axes.
VOCAB = "vocab"  # rows of the word embedding table, outputs of the MLM decoder
EMBED = "embed"  # the model width (hidden size), or the embedding size where it differs
HEADS = "heads"  # attention heads × head dim, flattened (q, k, v outputs; attention output input)
MLP = "mlp"  # feed-forward width F
# A width on the other side of a kernel whose two sides are both widths (D → D in the pooler and
# the classifier, D → E in the masked-LM transform, E → D in the embedding projection): apart
# from `embed`, so that the two sides shard over different mesh axes.
WIDTH = "width"
POSITIONS = "positions"  # rows of the learned position table
TOKEN_TYPES = "token_types"  # rows of the token type table
CLASSES = "classes"  # outputs of a classification head
COEFFS = "mobius_coeffs"  # the four coefficients a, b, c, d of a Möbius map
PARTS = "complex_parts"  # real and imaginary part

# Activation axes.
ACT_BATCH = "act_batch"
ACT_LENGTH = "act_length"
ACT_EMBED = "act_embed"
ACT_HEADS = "act_heads"
ACT_HEAD_DIM = "act_head_dim"
ACT_MLP = "act_mlp"
ACT_VOCAB = "act_vocab"
STREAM_AXES = (ACT_BATCH, ACT_LENGTH, ACT_EMBED)  # the residual stream [B, L, D]

# Data parallel over `data` and `fsdp` (FSDP shards the parameters' embed dimension too),
# tensor parallel over heads, feed-forward width and vocabulary (Megatron-style).
Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]
"""(logical axis name, mesh axis, axes or None) pairs, as `nn.logical_axis_rules` takes them."""

DEFAULT_RULES: Rules = (
  (ACT_BATCH, (DATA, FSDP)),
  (ACT_LENGTH, None),
  (ACT_EMBED, None),
  (ACT_HEADS, TENSOR),
  (ACT_HEAD_DIM, None),
  (ACT_MLP, TENSOR),
  (ACT_VOCAB, TENSOR),
  (VOCAB, TENSOR),
  (EMBED, FSDP),
  (HEADS, TENSOR),
  (MLP, TENSOR),
  (WIDTH, TENSOR),
  (POSITIONS, None),
  (TOKEN_TYPES, None),
  (CLASSES, None),
  (COEFFS, None),
  (PARTS, None),
)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, *, devices=None) -> Mesh:
  """A `(data, fsdp, tensor)` device mesh; one size may be −1: whatever the others leave.

  The axes are `Auto`: the compiler partitions whatever the logical constraints leave open.
  """
  devices = jax.devices() if devices is None else devices
  sizes = [data, fsdp, tensor]
  asked = dict(zip(MESH_AXES, sizes, strict=True))
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"Mesh sizes {asked}: each positive, or one of them −1 (fill).")
  if -1 in sizes:
    sizes[sizes.index(-1)] = len(devices) // math.prod(s for s in sizes if s != -1)
  if math.prod(sizes) != len(devices):
    raise ValueError(f"Mesh {asked} does not fit the {len(devices)} devices.")
  return jax.make_mesh(sizes, MESH_AXES, (AxisType.Auto,) * 3, devices=devices)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Rules = DEFAULT_RULES) -> Iterator[None]:
  """`mesh` and the logical axis `rules` in force: what sharded init, jit and steps need."""
  with nn.logical_axis_rules(rules), jax.set_mesh(mesh):
    yield
