"""What a compiled, partitioned program asks of each device: shard bytes and collectives.

`per_device_bytes` counts what one device holds of a sharded tree; `collectives` reads the
collectives out of a compiled program's HLO text. With `partitioning.sharded_abstract` they plan
a train step for a mesh from abstract inputs, nothing allocated (`benchmarks/pod.py`).
"""

from __future__ import annotations

import math
import re

import jax

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# Bytes per element of HLO element types (sub-byte types count as one byte).
DTYPE_BYTES = {
  "pred": 1,
  **dict.fromkeys(("s8", "u8", "s4", "u4", "f8e4m3fn", "f8e5m2", "f8e4m3", "f8e5m2fnuz"), 1),
  **dict.fromkeys(("s16", "u16", "f16", "bf16"), 2),
  **dict.fromkeys(("s32", "u32", "f32"), 4),
  **dict.fromkeys(("s64", "u64", "f64", "c64"), 8),
  "c128": 16,
}
# `name = shape kind(` in HLO text; `-start` and `-done` are the halves of async collectives.
_COLLECTIVE = re.compile(
  r"=\s*(?P<shape>.*?)\s+(?P<kind>" + "|".join(COLLECTIVES) + r")(?P<half>-start|-done)?\("
)
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([\d,]*)\]")


def per_device_bytes(tree) -> int:
  """Bytes that one device holds of `tree`'s arrays: each leaf's shard, not the global array.

  Leaves are `jax.Array`s or `jax.ShapeDtypeStruct`s with a sharding. Shardings here are
  `NamedSharding`s, whose shards all have one shape.
  """
  return sum(
    math.prod(leaf.sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize
    for leaf in jax.tree.leaves(tree)
  )


def collectives(hlo: str) -> dict[str, tuple[int, int]]:
  """(count, bytes of their results) of each kind of collective in a compiled HLO module.

  The module is one device's program, so shapes and bytes are per device. An async pair
  (`-start`, `-done`) counts once, by its `-done`, whose result is the collective's output.
  """
  found = dict.fromkeys(COLLECTIVES, (0, 0))
  for match in _COLLECTIVE.finditer(hlo):
    if match["half"] == "-start":
      continue
    size = sum(
      math.prod(int(d) for d in dims.split(",") if d) * DTYPE_BYTES[dtype]
      for dtype, dims in _ARRAY.findall(match["shape"])
    )
    count, total = found[match["kind"]]
    found[match["kind"]] = (count + 1, total + size)
  return found
