"""`train.core.plan` and `partitioning.sharded_abstract`: per-device shard bytes under FSDP, and
the HLO collective parser.

The shard sizes are checked against the buffers that a real sharded init puts on one of
conftest's 8 fake CPU devices, and against the abstract state of the same shardings (what
`benchmarks/pod.py` compiles for).
"""

import jax
import pytest

from configs import default
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.sharding import make_mesh
from train.core import optim, partitioning, plan
from train.core import state as train_state

VOCAB = 30_528  # pod.py's: 30,522 rounded up to a multiple of 64


def init_fn(preset: str, length: int = 16):
  """pod.py's state: the default config's optimiser (AdamW) on a long schedule."""
  config = default.get_config()
  config.num_train_steps = 10_000
  model = MaskedLM(ModelConfig.preset(preset, vocab_size=VOCAB))
  return train_state.init_fn(model, optim.make_optimizer(config), length)


@pytest.mark.parametrize(("data", "fsdp"), [(1, 8), (2, 4)])
def test_fsdp_splits_parameters(data, fsdp):
  """Each device holds 1/fsdp of the parameters and of AdamW's moments (±10 %).

  Not exactly 1/fsdp: most biases (the decoder's over 30,528 words among them) stay whole
  (bert-tiny: 1.05 / fsdp at fsdp 8, 1.02 / fsdp at fsdp 4).
  """
  mesh = make_mesh(data, fsdp, 1)
  state, _ = partitioning.sharded_init(init_fn("bert-tiny"), mesh, jax.random.key(0))
  total = sum(leaf.nbytes for leaf in jax.tree.leaves(state.params))
  per_device = plan.per_device_bytes(state.params)
  assert per_device == pytest.approx(total / fsdp, rel=0.10)
  assert plan.per_device_bytes(state.opt_state) == pytest.approx(2 * total / fsdp, rel=0.10)
  # What one device really holds, and the abstract state of the same shardings: the same bytes.
  device = mesh.devices.flat[0]
  held = sum(
    shard.data.nbytes
    for leaf in jax.tree.leaves(state.params)
    for shard in leaf.addressable_shards
    if shard.device == device
  )
  assert per_device == held
  abstract, _ = partitioning.sharded_abstract(init_fn("bert-tiny"), mesh, jax.random.key(0))
  assert plan.per_device_bytes(abstract.params) == per_device


def test_replicated_parameters_are_whole():
  mesh = make_mesh(8, 1, 1)
  state, _ = partitioning.sharded_abstract(init_fn("bert-tiny"), mesh, jax.random.key(0))
  total = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state.params))
  assert plan.per_device_bytes(state.params) == total


def test_collectives_parses_sync_async_and_tuples():
  hlo = """
  %all-reduce.1 = f32[768]{0} all-reduce(f32[768]{0} %p), replica_groups=[8,8]<=[64]
  %ar = (f32[4,2]{1,0}, bf16[8]{0}) all-reduce(f32[4,2]{1,0} %a, bf16[8]{0} %b), to_apply=%add
  %ag-start = (f32[2]{0}, f32[16]{0}) all-gather-start(f32[2]{0} %x), dimensions={0}
  %ag-done = f32[16]{0} all-gather-done((f32[2]{0}, f32[16]{0}) %ag-start)
  ROOT %rs = bf16[3,4]{1,0} reduce-scatter(bf16[24,4]{1,0} %y), dimensions={0}
  %fusion = f32[16]{0} fusion(f32[16]{0} %ag-done), kind=kLoop, calls=%all-gather_fused
  """
  found = plan.collectives(hlo)
  assert found["all-reduce"] == (2, 768 * 4 + 8 * 4 + 8 * 2)
  assert found["all-gather"] == (1, 16 * 4)
  assert found["reduce-scatter"] == (1, 12 * 2)
  assert found["all-to-all"] == found["collective-permute"] == (0, 0)
