"""Attention on TPU kernels: splash attention (Pallas), for `implementation="splash"`.

`splash_attention` computes what `dot_product_attention` does, softmax(q kᵀ · scale) v over
`[B, T, N, H]` arrays with a padding mask, with the Pallas TPU kernel of
`jax.experimental.pallas.ops.tpu.splash_attention` (a flash attention that skips masked blocks).
Möbius attention reaches it through `mobius_dot_product_attention`, whose hermitian and bilinear
scores are one real attention of width 2C (128 at base size, the width TPU kernels are built
for).

* **The mask** is a padding mask (`padding_mask`: `[B, 1, 1, S]`, True at real keys), passed to
  the kernel as segment ids: every query has id 1, a real key 1, a padding key 0, so queries
  attend to the real keys only, as with the mask. A row without any real key attends to all its
  keys with equal weights (its queries are zeroed), as the masked softmax does, whose logits
  are then all equal. Other masks and biases are refused.
* **Blocking.** The kernel works on blocks of 128 (and more) tokens: T and S are padded to
  multiples of 128 (padded queries are dropped, padded keys get id 0 and are never attended to),
  and head dims other than multiples of 128 are padded with zeros to one (zeros change no score;
  the padded output columns are dropped).
* **Partitioning.** A Mosaic kernel cannot be partitioned by XLA: the call runs inside
  `jax.shard_map` over the mesh in force (`jax.sharding.get_abstract_mesh()`), the batch over the
  mesh axes the logical rules in force give `act_batch` (default: data, fsdp), the heads over
  those of `act_heads` (tensor); an axis that does not divide its dimension is left out (that
  dimension is then gathered). Without a mesh the kernel is called as it is.
* **Where it runs.** Lowered for a TPU, the Mosaic kernel; on any other platform (CPU tests, CI)
  the same kernel in Pallas interpret mode (`jax.lax.platform_dependent`), slow but exact.
* **Not supported:** attention dropout (the config refuses `attention_dropout` > 0 with it),
  an explicit matmul precision, biases.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental.pallas.ops.tpu.splash_attention import (
  splash_attention_kernel as splash_kernel,
)
from jax.experimental.pallas.ops.tpu.splash_attention import (
  splash_attention_mask as splash_mask,
)
from jax.sharding import PartitionSpec as P

from mobius_jax.sharding import ACT_BATCH, ACT_HEADS, DEFAULT_RULES

LANES = 128  # the kernel's block unit along sequences and its lane width along head dims
BLOCKS = (512, 256, 128)  # block sizes tried, largest first: the largest that divides


def splash_attention(
  query: Array,
  key: Array,
  value: Array,
  *,
  mask: Array | None = None,
  scale: float | None = None,
  interpret: bool | None = None,
) -> Array:
  """softmax(q kᵀ · scale) v over `[B, T, N, H]` arrays, on the splash attention kernel.

  Args:
    query: `[B, T, N, H]`.
    key: `[B, S, N, H]`.
    value: `[B, S, N, H]`.
    mask: None, or a padding mask `[B, 1, 1, S]` (or `[1, 1, 1, S]`), True at real keys.
    scale: logits scale; default 1 / √H.
    interpret: None: the Mosaic kernel where lowered for TPU, interpret mode elsewhere; True or
      False to force one (False outside a TPU fails to lower).

  Returns:
    `[B, T, N, H]`, in the dtype of `query`.

  Raises:
    ValueError: a mask that is not a padding mask, or shapes that do not agree.
  """
  batch, q_len, heads, head_dim = query.shape
  kv_len = key.shape[1]
  if key.shape != (batch, kv_len, heads, head_dim) or value.shape != key.shape:
    raise ValueError(
      f"splash attention takes query [B, T, N, H] and key, value [B, S, N, H] of the same B, N "
      f"and H; got {query.shape}, {key.shape}, {value.shape}."
    )
  scale = head_dim**-0.5 if scale is None else scale
  q = query * jnp.asarray(scale, query.dtype)
  kv_ids = _key_segment_ids(mask, batch, kv_len)
  if kv_ids is not None:
    # A row without real keys: all of them, with equal logits (zero queries), as the mask does.
    any_real = kv_ids.any(axis=-1)
    kv_ids = jnp.where(any_real[:, None], kv_ids, 1)
    q = jnp.where(any_real[:, None, None, None], q, jnp.zeros((), q.dtype))
  q_pad, kv_pad, dim_pad = (-n % LANES for n in (q_len, kv_len, head_dim))
  if kv_ids is None and kv_pad:
    kv_ids = jnp.ones((batch, kv_len), jnp.int32)
  q = _pad(q, q_pad, dim_pad)
  k, v = _pad(key, kv_pad, dim_pad), _pad(value, kv_pad, dim_pad)
  segments = None
  if kv_ids is not None:
    q_ids = jnp.ones((batch, q_len + q_pad), jnp.int32)
    segments = (q_ids, jnp.pad(kv_ids, ((0, 0), (0, kv_pad))))  # padded keys: id 0
  q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))  # [B, N, L, H], the kernel's layout

  def run(interpret_mode, q, k, v, segments):
    call = functools.partial(_sharded_call, interpret=interpret_mode)
    return call(q, k, v, segments)

  if interpret is None:
    out = jax.lax.platform_dependent(
      q,
      k,
      v,
      segments,
      tpu=functools.partial(run, False),
      default=functools.partial(run, True),
    )
  else:
    out = run(interpret, q, k, v, segments)
  out = jnp.swapaxes(out, 1, 2)[:, :q_len, :, :head_dim]
  return out.astype(query.dtype)


def _key_segment_ids(mask: Array | None, batch: int, kv_len: int) -> Array | None:
  """`[B, S]` int32 key segment ids from a padding mask: 1 at real keys, 0 at padding. None
  without a mask."""
  if mask is None:
    return None
  mask = jnp.asarray(mask)
  if mask.ndim != 4 or mask.shape[1:3] != (1, 1) or mask.shape[0] not in (1, batch):
    raise ValueError(
      f"implementation='splash' takes a padding mask of shape [B, 1, 1, S] (padding_mask of a "
      f"[B, S] validity array); got a mask of shape {mask.shape}. Use implementation=None for "
      "other masks."
    )
  return jnp.broadcast_to(mask[:, 0, 0, :] != 0, (batch, kv_len)).astype(jnp.int32)


def _pad(x: Array, length: int, dims: int) -> Array:
  """`[B, L, N, H]` padded with zeros by `length` tokens and `dims` head dims."""
  if not length and not dims:
    return x
  return jnp.pad(x, ((0, 0), (0, length), (0, 0), (0, dims)))


def _block(length: int) -> int:
  return next(b for b in BLOCKS if length % b == 0)


def _kernel_call(q, k, v, segments, *, interpret: bool):
  """The kernel over local `[b, n, L, H]` arrays (one device's shard, or the whole)."""
  _, heads, q_len, _ = q.shape
  kv_len = k.shape[2]
  bq, bkv = _block(q_len), _block(kv_len)
  blocks = splash_kernel.BlockSizes(
    block_q=bq,
    block_kv=bkv,
    block_kv_compute=bkv,
    block_q_dkv=bq,
    block_kv_dkv=bkv,
    block_kv_dkv_compute=bkv,
    block_q_dq=bq,
    block_kv_dq=bkv,
  )
  full = splash_mask.MultiHeadMask([splash_mask.FullMask((q_len, kv_len))] * heads)
  kernel = splash_kernel.make_splash_mha(
    full, block_sizes=blocks, head_shards=1, q_seq_shards=1, interpret=interpret
  )
  if segments is None:
    return jax.vmap(kernel)(q, k, v)
  ids = splash_kernel.SegmentIds(q=segments[0], kv=segments[1])
  return jax.vmap(kernel)(q, k, v, segment_ids=ids)


def _sharded_call(q, k, v, segments, *, interpret: bool):
  """`_kernel_call` inside `jax.shard_map` over the batch and head axes of the mesh in force;
  a plain call without a mesh (or with every mesh axis of size 1)."""
  mesh = jax.sharding.get_abstract_mesh()
  call = functools.partial(_kernel_call, interpret=interpret)
  if mesh.empty or math.prod(mesh.shape.values()) == 1:
    return call(q, k, v, segments)
  batch_axes = _mesh_axes(mesh, ACT_BATCH, q.shape[0])
  head_axes = _mesh_axes(mesh, ACT_HEADS, q.shape[1])
  spec = P(batch_axes, head_axes, None, None)  # [B, N, L, H]
  ids_spec = P(batch_axes, None)
  in_specs = (spec, spec, spec, None if segments is None else (ids_spec, ids_spec))
  return jax.shard_map(call, mesh=mesh, in_specs=in_specs, out_specs=spec, check_vma=False)(
    q, k, v, segments
  )


def _mesh_axes(mesh, logical: str, size: int) -> tuple[str, ...] | None:
  """The mesh axes the logical rules in force (else `DEFAULT_RULES`) give `logical`, less those
  the mesh lacks or that are manual already, and less trailing ones until they divide `size`."""
  rules = dict(nn.get_logical_axis_rules() or DEFAULT_RULES)
  axes = rules.get(logical)
  axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
  manual = set(getattr(mesh, "manual_axes", ()))
  axes = [a for a in axes if a in mesh.axis_names and a not in manual and mesh.shape[a] > 1]
  while axes and size % int(np.prod([mesh.shape[a] for a in axes])):
    axes.pop()
  return tuple(axes) or None
