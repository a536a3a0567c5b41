"""The device mesh, the shardings of state and batches, and sharded initialisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mobius_jax.sharding import DATA, DEFAULT_RULES, FSDP, Rules, make_mesh, use_mesh


def join_processes(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Joins JAX's distributed runtime; call it before any other JAX work.

  With the three arguments: that cluster (e.g. processes on one machine joined at
  "localhost:PORT"). Without them: JAX's own detection of TPU pods, SLURM and Open MPI, and one
  plain process where it finds none.
  """
  given = (coordinator_address, num_processes, process_id)
  if any(value is not None for value in given):
    if None in given:
      raise ValueError(
        "--coordinator_address, --num_processes and --process_id go together: give all three "
        "(e.g. localhost:12345, 2 and 0 or 1), or none to let JAX detect the cluster."
      )
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return
  try:
    jax.distributed.initialize()
  except ValueError:  # no cluster detected ("coordinator_address should be defined")
    return


def barrier(name: str) -> None:
  """Waits until every process reaches this point (nothing to wait for with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def axis_rules(config: ml_collections.ConfigDict) -> Rules:
  """`config.logical_axis_rules` as a tuple of (logical name, mesh axes) pairs; None: default."""
  if config.logical_axis_rules is None:
    return DEFAULT_RULES
  return tuple(
    (name, tuple(axes) if isinstance(axes, list) else axes)
    for name, axes in config.logical_axis_rules
  )


def mesh_from_config(config: ml_collections.ConfigDict) -> Mesh:
  """The `config.mesh.{data, fsdp, tensor}` mesh over the devices of every process.

  One size may be −1: all the devices the others leave. Devices are ordered by process, so the
  data-parallel axes (data, fsdp) run across hosts and the tensor axis within one. One process
  may use only its first devices (a 1 × 1 × 1 mesh on one device); several processes must each
  hold a share of the mesh.
  """
  sizes = (config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  processes = jax.process_count()
  if -1 not in sizes and 0 < math.prod(sizes) < len(devices):
    if processes > 1:
      raise ValueError(
        f"config.mesh={dict(config.mesh)} uses {math.prod(sizes)} of the {len(devices)} devices "
        f"of {processes} processes, which would leave processes without devices: use all of "
        "them (a size of −1 fills)."
      )
    devices = devices[: math.prod(sizes)]
  if processes > 1 and jax.local_device_count() % max(config.mesh.tensor, 1):
    raise ValueError(
      f"config.mesh.tensor={config.mesh.tensor} must divide each host's "
      f"{jax.local_device_count()} devices: tensor parallelism stays within a host."
    )
  return make_mesh(*sizes, devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split along their first axis over `data` × `fsdp`."""
  return NamedSharding(mesh, P((DATA, FSDP)))


def shard_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This process's rows of a global batch (`input_pipeline.process_share`) → global arrays
  sharded over the mesh."""
  return {
    key: jax.make_array_from_process_local_data(sharding, value) for key, value in batch.items()
  }


def sharded_abstract(init_fn: Callable, mesh: Mesh, *args, rules=DEFAULT_RULES):
  """What `sharded_init` would make, without allocating it: (state, shardings), the state's
  leaves `jax.ShapeDtypeStruct`s that carry their shardings (the inputs of a compile-only
  plan)."""
  boxed = jax.eval_shape(init_fn, *args)
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
  state = jax.tree.map(
    lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
    nn.meta.unbox(boxed),
    shardings,
  )
  return state, shardings


def sharded_init(init_fn: Callable, mesh: Mesh, *args, rules=DEFAULT_RULES):
  """Runs `init_fn(*args)` straight into its shardings: returns (state, shardings).

  `init_fn` returns a pytree whose leaves may be `nn.Partitioned` (logical axis names); the
  shardings come from those names via `rules`, and the returned state is unboxed.
  """
  _, shardings = sharded_abstract(init_fn, mesh, *args, rules=rules)

  def unboxed_init(*args):
    return nn.meta.unbox(init_fn(*args))

  with use_mesh(mesh, rules):
    state = jax.jit(unboxed_init, out_shardings=shardings)(*args)
  return state, shardings
