"""The device mesh, the shardings of state and batches, and sharded initialisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mobius_jax.sharding import DATA, DEFAULT_RULES, FSDP, Rules, make_mesh, use_mesh


def axis_rules(config: ml_collections.ConfigDict) -> Rules:
  """`config.logical_axis_rules` as a tuple of (logical name, mesh axes) pairs; None: default."""
  if config.logical_axis_rules is None:
    return DEFAULT_RULES
  return tuple(
    (name, tuple(axes) if isinstance(axes, list) else axes)
    for name, axes in config.logical_axis_rules
  )


def mesh_from_config(config: ml_collections.ConfigDict) -> Mesh:
  """`config.mesh.{data, fsdp, tensor}`: one size may be −1 (all devices the others leave);
  without −1 the mesh takes the first devices it needs (e.g. 1 × 1 × 1 for one device)."""
  sizes = (config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  devices = jax.devices()
  if -1 not in sizes and 0 < math.prod(sizes) <= len(devices):
    devices = devices[: math.prod(sizes)]
  return make_mesh(*sizes, devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split along their first axis over `data` × `fsdp`."""
  return NamedSharding(mesh, P((DATA, FSDP)))


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This process's rows of a batch → global arrays sharded over the mesh."""
  return {
    key: jax.make_array_from_process_local_data(sharding, value) for key, value in batch.items()
  }


def sharded_init(init_fn: Callable, mesh: Mesh, *args, rules=DEFAULT_RULES):
  """Runs `init_fn(*args)` straight into its shardings: returns (state, shardings).

  `init_fn` returns a pytree whose leaves may be `nn.Partitioned` (logical axis names); the
  shardings come from those names via `rules`, and the returned state is unboxed.
  """
  abstract = jax.eval_shape(init_fn, *args)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, rules)

  def unboxed_init(*args):
    return nn.meta.unbox(init_fn(*args))

  with use_mesh(mesh, rules):
    state = jax.jit(unboxed_init, out_shardings=shardings)(*args)
  return state, shardings
