"""`train.core.partitioning`: the mesh a config asks for, its axis rules, sharded batches, and
the sharded state, abstract or allocated."""

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.sharding import DEFAULT_RULES, make_mesh
from train.core import optim, partitioning
from train.core import state as train_state


def mesh_config(data, fsdp, tensor):
  config = default.get_config()
  config.mesh.update(data=data, fsdp=fsdp, tensor=tensor)
  return config


def test_the_mesh_fills_the_devices_or_takes_the_first_ones():
  assert dict(partitioning.mesh_from_config(mesh_config(-1, 2, 1)).shape) == {
    "data": 4,
    "fsdp": 2,
    "tensor": 1,
  }
  mesh = partitioning.mesh_from_config(mesh_config(2, 1, 2))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 1, "tensor": 2}
  assert list(mesh.devices.flat) == jax.devices()[:4]  # one process: its first devices
  assert partitioning.mesh_from_config(mesh_config(1, 1, 1)).devices.size == 1


def test_axis_rules_default_to_the_packages_and_read_lists_as_tuples():
  config = default.get_config()
  assert partitioning.axis_rules(config) == DEFAULT_RULES
  config.logical_axis_rules = (("batch", ["data", "fsdp"]), ("vocab", "tensor"), ("heads", None))
  assert partitioning.axis_rules(config) == (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("heads", None),
  )


def test_a_batch_is_split_over_data_and_fsdp():
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  batch = {"input_ids": np.arange(8 * 4).reshape(8, 4), "labels": np.arange(8)}
  sharded = partitioning.shard_batch(batch, partitioning.batch_sharding(mesh))
  for key, value in sharded.items():
    assert value.sharding.spec == P(("data", "fsdp"))
    np.testing.assert_array_equal(value, batch[key])
  assert sharded["input_ids"].addressable_shards[0].data.shape == (2, 4)


def test_the_abstract_state_carries_the_shardings_the_state_is_made_with():
  mesh = make_mesh(data=2, fsdp=2, tensor=2)
  model = MaskedLM(ModelConfig.preset("mobius_bert-tiny", vocab_size=64))
  init = train_state.init_fn(model, optim.make_optimizer(default.get_config()), 16)
  abstract, shardings = partitioning.sharded_abstract(init, mesh, jax.random.key(0))
  state, made_with = partitioning.sharded_init(init, mesh, jax.random.key(0))
  assert jax.tree.leaves(shardings) == jax.tree.leaves(made_with)
  leaves, arrays = jax.tree.leaves(abstract), jax.tree.leaves(state)
  assert len(leaves) == len(arrays)
  for leaf, array in zip(leaves, arrays, strict=True):
    assert isinstance(leaf, jax.ShapeDtypeStruct)
    assert (leaf.shape, leaf.dtype) == (array.shape, array.dtype)
    assert leaf.sharding.is_equivalent_to(array.sharding, array.ndim)
  table = abstract.params["backbone"]["embeddings"]["word_embeddings"]["embedding"]
  assert table.sharding.spec == P("tensor", "fsdp")
