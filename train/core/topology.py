"""TPU slices to compile for on a machine without a TPU: their compile-only devices (libtpu, the
`[tpu]` extra), the chips' figures the plan reads against the compiler's answers, and the mesh
over them (`train.core.plan` compiles the train step for them).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mobius_jax.sharding import make_mesh

GIB = 2**30
# What a TPU compile that does not fit says, e.g. "... the total memory required for HLO
# temporaries (34.00G) exceeds available HBM (15.75G)."
_AVAILABLE_HBM = re.compile(r"available HBM \(([\d.]+)G\)")
INSTALL_HINT = 'pip install -c constraints.txt -e ".[tpu]"'


@dataclasses.dataclass(frozen=True)
class Chip:
  """One TPU generation: what the plan reads against the compiler's answers.

  `kind` is the prefix of libtpu's topology names ("v5e" in "v5e:16x16"); `chip_config` is
  libtpu's `chip_config_name` ("megacore": one device per chip, its two TensorCores as one);
  `shapes` are common slice shapes (Google Cloud's page of the version), for error messages.
  """

  kind: str
  name: str
  hbm_bytes: int  # per chip
  peak_flops: float  # dense bfloat16 FLOP/s per chip
  chip_config: str
  shapes: tuple[str, ...]


# HBM and peak dense bfloat16 compute per chip, from Google Cloud's TPU documentation, one page
# per version (cloud.google.com/tpu/docs/<version>; read 2026-11):
#   v4   (docs/v4):          "Peak compute per chip 275 teraflops (bf16 or int8)", "HBM2 capacity
#                            and bandwidth 32 GiB, 1200 GBps"; two TensorCores per chip.
#   v5e  (docs/v5e):         "Peak compute per chip (bf16) 197 TFLOPs", "HBM2 capacity ... 16 GB".
#   v5p  (docs/v5p-training): "Peak compute per chip (BF16) (TFLOPs) 459", "HBM capacity per chip
#                            (GiB) 95"; two TensorCores per chip.
#   v6e  (docs/v6e):         "Peak compute per chip (bf16) 918 TFLOPs", "HBM capacity per chip
#                            32 GB".
# The v5e and v6e pages write "GB" for 16 and 32 GiB parts. The compiler itself leaves a little
# of it to the runtime: `compiler_hbm_bytes` asks it (15.75, 95.74, 31.25 and 30.75 GiB for v5e,
# v5p, v6e and v4 with libtpu 0.0.42.1).
_2D_SHAPES = ("2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16")  # v5e, v6e
CHIPS = {
  "v4": Chip(
    "v4",
    "TPU v4",
    32 * GIB,
    275e12,
    "megacore",
    ("2x2x1", "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8"),
  ),
  "v5e": Chip("v5e", "TPU v5e", 16 * GIB, 197e12, "default", _2D_SHAPES),
  "v5p": Chip(
    "v5p",
    "TPU v5p",
    95 * GIB,
    459e12,
    "megacore",
    ("2x2x1", "2x2x2", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16"),
  ),
  "v6e": Chip("v6e", "TPU v6e", 32 * GIB, 918e12, "default", _2D_SHAPES),
}


class LibtpuMissingError(RuntimeError):
  """The TPU compiler (the `libtpu` package) is not installed."""


class UnknownTopologyError(ValueError):
  """A topology name that libtpu does not know, or whose chip this plan has no figures for."""


def known_topologies() -> list[str]:
  """Every `kind:shape` of `CHIPS` (libtpu accepts other shapes of these kinds too)."""
  return [f"{chip.kind}:{shape}" for chip in CHIPS.values() for shape in chip.shapes]


def require_libtpu() -> None:
  """Raises `LibtpuMissingError`, saying how to install it, unless libtpu can be imported."""
  if importlib.util.find_spec("libtpu") is None:
    raise LibtpuMissingError(
      "The TPU plan needs the TPU compiler, the libtpu package, which is not installed in this "
      f"environment. Install the [tpu] extra in a virtual environment of its own: {INSTALL_HINT} "
      "(it needs no TPU; jax then compiles for TPU topologies on this machine). Without it, "
      "benchmarks/pod.py plans the step on fake CPU devices."
    )


@dataclasses.dataclass(frozen=True)
class Topology:
  """A TPU slice's compile-only devices (one per chip) and what its chip is."""

  name: str
  chip: Chip
  devices: tuple

  @property
  def num_chips(self) -> int:
    return len(self.devices)


def get_topology(name: str) -> Topology:
  """The compile-only devices of a TPU slice such as "v5e:16x16", on any machine with libtpu.

  v4 and v5p are asked for in libtpu's megacore layout, one device per chip (their default is
  one per TensorCore).

  Raises:
    LibtpuMissingError: libtpu is absent (`require_libtpu`).
    UnknownTopologyError: an unknown chip kind or a shape libtpu refuses; the message lists the
      known topologies.
  """
  require_libtpu()
  # libtpu lets one process at a time load it (a lockfile in /tmp) unless told otherwise; a
  # compile-only plan holds no TPU, and may run beside a job, a test or another plan.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies

  kind, _, shape = name.partition(":")
  known = ", ".join(known_topologies())
  if kind not in CHIPS or not shape:
    raise UnknownTopologyError(
      f"Unknown TPU topology {name!r}: give KIND:SHAPE with KIND one of {tuple(CHIPS)}, e.g. "
      f"v5e:16x16 (256 chips). Known: {known}."
    )
  chip = CHIPS[kind]
  try:
    description = topologies.get_topology_desc(
      topology_name=name, platform="tpu", chip_config_name=chip.chip_config
    )
  except RuntimeError as error:  # jax's JaxRuntimeError
    if not str(error).startswith("INVALID_ARGUMENT"):
      raise
    raise UnknownTopologyError(
      f"libtpu refuses the TPU topology {name!r}: {str(error).splitlines()[0]} Known: {known}."
    ) from error
  return Topology(name, chip, tuple(description.devices))


def topology_mesh(topology: Topology, data: int = -1, fsdp: int = 1, tensor: int = 1) -> Mesh:
  """The `(data, fsdp, tensor)` mesh over a topology's devices (one size may be −1: the rest),
  laid out on the chips' physical torus by `jax.make_mesh`."""
  return make_mesh(data, fsdp, tensor, devices=list(topology.devices))


def compiler_hbm_bytes(topology: Topology) -> int | None:
  """The HBM per chip that the TPU compiler lets a program use, asked of it: a program that
  cannot fit is compiled, and its RESOURCE_EXHAUSTED error names the available HBM. None if
  the message has another form."""
  mesh = make_mesh(1, 1, 1, devices=list(topology.devices[:1]))
  huge = jax.ShapeDtypeStruct((2**36,), jnp.float32, sharding=NamedSharding(mesh, P()))
  try:
    jax.jit(lambda x: jnp.sin(x) + jnp.cos(x)[::-1]).lower(huge).compile()
  except RuntimeError as error:
    found = _AVAILABLE_HBM.search(str(error))
    return round(float(found[1]) * GIB) if found else None
  return None
