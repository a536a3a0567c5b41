"""Pod-scale memory plan: the real train step compiled, never run, for 64 and 256 devices.

For each preset and mesh (data × fsdp × tensor over fake CPU devices), the masked-LM train
step of `train_step.py` (ours: `train.core.state.train_step`, AdamW through `make_optimizer`, the
last layer and the logits at the masked positions) is lowered and compiled for the paper's
step, 4,096 rows × 128 tokens, bfloat16 compute with float32 parameters and optimiser state,
vocabulary 30,528, from abstract inputs (`jax.ShapeDtypeStruct`s carrying the shardings that
`DEFAULT_RULES` gives): nothing of the model's size is allocated. Per device it reports

  * parameter and optimiser-state bytes: each leaf's shard (`sharding.shard_shape`);
  * XLA's buffer plan (`compiled.memory_analysis()`): arguments, outputs, the outputs aliased
    to the donated state, temporaries, and their sum less the aliases;
  * the collectives of the compiled, partitioned program (its HLO text): count and bytes of
    each kind's results (one device's shapes; layers are unrolled, so the count is per step);
  * XLA's FLOP count (`cost_analysis()`), which on a partitioned program is one device's
    (`--check_flops`, on by default, compiles the same global step for 1 device to show it),
    next to the model FLOPs of `steps.model_flops` (6 · N · tokens + decoder + attention).

From the global step's FLOPs, what the paper's run (70,000 steps) costs on a TPU v4-32, a
TPU v5e-64 and 8 H100 SXM at 40 % and 50 % MFU.

Caveat: the compiled program is XLA:CPU's. The shard sizes carry over to any backend; the
temporaries and collectives less so: XLA:CPU computes bfloat16 in float32 (its temporaries
hold float32 activations, and every collective here is float32) and forms no reduce-scatter
(FSDP's gradient reduction shows as an all-reduce of whole gradients, then a slice).

  python benchmarks/pod.py               # 4 presets × 4 meshes; 10-30 minutes on 2 cores
  python benchmarks/pod.py --presets bert-base --meshes 8x8x1,4x8x2 --nocheck_flops
  python benchmarks/pod.py --presets bert-tiny --meshes 1x8x1 --batch 16 --length 32
"""

from __future__ import annotations

import argparse
import math
import os

if __name__ == "__main__":
  # Fake CPU devices must be asked for before jax is first imported: as many as the largest
  # mesh of --meshes needs, else the most of --devices (256 by default). So these two flags
  # are read here, by a pre-parse that ignores every other argument; absl parses them all (and
  # checks them) in main.
  _pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  _pre.add_argument("--meshes", default="")
  _pre.add_argument("--devices", default="256")
  _known, _ = _pre.parse_known_args()
  _sizes = [math.prod(int(s) for s in m.split("x")) for m in _known.meshes.split(",") if m]
  _count = max(_sizes or [int(n) for n in _known.devices.split(",")])
  os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={_count}"]
  ).strip()

import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import jax
import steps
from absl import app, flags

from mobius_jax.sharding import make_mesh
from train.core import plan
from train.markdown import table

PRESETS = ("bert-base", "mobius_bert-base", "bert-large", "mobius_bert-large")
DEVICES = (64, 256)
STEPS = 70_000  # the paper's (MosaicBERT's) pretraining run
MIB = 2**20
# Dense bfloat16 peak per chip, TFLOP/s. Google Cloud's "TPU v4" page
# (cloud.google.com/tpu/docs/v4: 275 per chip; a v4-32 slice is 32 TensorCores, 16 chips),
# its "TPU v5e" page (cloud.google.com/tpu/docs/v5e: 197 per chip; v5e-64 is 64 chips) and
# NVIDIA's H100 Tensor Core GPU datasheet (H100 SXM BF16: 1,979 with sparsity, 989 dense).
SYSTEMS = (("TPU v4-32", 16, 275.0), ("TPU v5e-64", 64, 197.0), ("8 × H100 SXM", 8, 989.0))
MFUS = (0.4, 0.5)

_PRESETS = flags.DEFINE_list("presets", list(PRESETS), "Model presets.")
_DEVICES = flags.DEFINE_list(
  "devices", [str(n) for n in DEVICES], "Device counts, each with its default meshes."
)
_MESHES = flags.DEFINE_list(
  "meshes", None, "data x fsdp x tensor, e.g. 8x8x1,4x8x2 (instead of --devices' meshes)."
)
_BATCH = flags.DEFINE_integer("batch", 4096, "Rows of the global step.")
_LENGTH = flags.DEFINE_integer("length", 128, "Tokens per row.")
_DTYPE = flags.DEFINE_string("dtype", "bfloat16", "Compute dtype.")
_CHECK_FLOPS = flags.DEFINE_bool(
  "check_flops",
  True,
  "Compile each preset's global step on 1 device too: is cost_analysis per device?",
)
_COSTS = flags.DEFINE_bool("costs", True, "What the paper's run costs on each system.")


def parse_mesh(text: str) -> tuple[int, int, int]:
  """Parses "4x8x2" into (data, fsdp, tensor)."""
  sizes = tuple(int(s) for s in text.split("x"))
  if len(sizes) != 3:
    raise app.UsageError(f"--meshes {text!r}: give data x fsdp x tensor, e.g. 4x8x2")
  return sizes


def default_meshes(devices: int) -> list[tuple[int, int, int]]:
  """FSDP over 8 (one host's chips), the rest data parallel; and the same with tensor = 2."""
  fsdp = min(8, devices)
  meshes = [(devices // fsdp, fsdp, 1)]
  if devices >= 2 * fsdp:
    meshes.append((devices // (2 * fsdp), fsdp, 2))
  return meshes


def mesh_name(mesh: dict) -> str:
  return "×".join(str(mesh[axis]) for axis in ("data", "fsdp", "tensor"))


def case(r: dict) -> list[str]:
  return [r["preset"], str(r["devices"]), mesh_name(r["mesh"])]


def memory_row(r: dict) -> list[str]:
  mib = {k: r[k] / MIB for k in r if k.endswith("_bytes")}
  total = mib["argument_bytes"] + mib["output_bytes"] - mib["alias_bytes"] + mib["temp_bytes"]
  return [
    *case(r),
    *(str(r["rows"]), f"{r['params'] / 1e6:.1f} M"),
    *(f"{mib[k]:.1f}" for k in ("param_bytes", "opt_bytes", "argument_bytes", "output_bytes")),
    *(f"{mib[k]:.1f}" for k in ("alias_bytes", "temp_bytes")),
    *(f"{total:.1f}", f"{r['lower_s']:.1f}", f"{r['compile_s']:.1f}"),
  ]


def collective_row(r: dict) -> list[str]:
  counts = (r["collectives"][k] for k in plan.COLLECTIVES)
  return [*case(r), *(f"{n} / {b / MIB:.1f}" if n else "–" for n, b in counts)]


def flops_row(r: dict, one_device: float | None) -> list[str]:
  total = r["flops"] * r["devices"]
  check = (f"{one_device / 1e12:.2f}", f"{total / one_device:.4f}") if one_device else ("–", "–")
  return [
    *(*case(r), f"{r['flops'] / 1e12:.4f}", f"{total / 1e12:.2f}", *check),
    *(f"{r['model_flops'] / 1e12:.2f}", f"{total / r['model_flops']:.3f}"),
  ]


def cost_rows(preset: str, step_flops: float) -> list[list[str]]:
  """Hours and chip-hours of `STEPS` steps of `step_flops` on each system and MFU."""
  rows = []
  for system, chips, peak in SYSTEMS:
    for mfu in MFUS:
      hours = STEPS * step_flops / (chips * peak * 1e12 * mfu) / 3600
      cells = [preset, system, str(chips), f"{peak:.0f}", f"{mfu:.0%}"]
      rows.append([*cells, f"{hours:.1f}", f"{hours * chips:.0f}"])
  return rows


def main(argv):
  common.start(argv)
  if _MESHES.value:
    meshes = [parse_mesh(mesh) for mesh in _MESHES.value]
  else:
    meshes = [m for n in _DEVICES.value for m in default_meshes(int(n))]
  batch, length, dtype = _BATCH.value, _LENGTH.value, _DTYPE.value
  start = time.perf_counter()
  print(
    f"# {common.machine()}, {len(jax.devices())} fake devices; global step {batch} rows × "
    f"{length} tokens, {dtype} compute, float32 parameters and AdamW state, "
    f"vocabulary {steps.PADDED_VOCAB}; compiled, not run. MiB per device."
  )
  results, one_device = [], {}
  for preset in _PRESETS.value:
    if _CHECK_FLOPS.value:
      mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
      r = steps.compile_step(preset, mesh, batch, length, dtype)
      one_device[preset] = r["flops"]
      print(
        f"# {preset}: 1-device compile of the global step: {r['flops'] / 1e12:.2f} TFLOP "
        f"(lower {r['lower_s']:.1f} s, compile {r['compile_s']:.1f} s)",
        flush=True,
      )
    for data, fsdp, tensor in meshes:
      n = data * fsdp * tensor
      mesh = make_mesh(data, fsdp, tensor, devices=jax.devices()[:n])
      r = steps.compile_step(preset, mesh, batch, length, dtype)
      r["rows"] = batch // (data * fsdp)
      results.append(r)
      common.progress(memory_row(r))

  where = ("model", "devices", "data×fsdp×tensor")
  print("\n## Memory per device (MiB)\n")
  header = [
    *(*where, "rows/device", "parameters"),
    *("param MiB", "AdamW MiB", "arguments MiB", "outputs MiB", "aliased MiB"),
    *("temp MiB", "total MiB", "lower s", "compile s"),
  ]
  print(table(header, [memory_row(r) for r in results]))
  print("\n## Collectives per device per step (count / MiB of results)\n")
  print(table([*where, *plan.COLLECTIVES], [collective_row(r) for r in results]))
  print("\n## FLOPs per step (TFLOP)\n")
  header = [
    *(*where, "XLA per device", "× devices"),
    *("1-device compile", "× devices ÷ 1-device", "model", "× devices ÷ model"),
  ]
  print(table(header, [flops_row(r, one_device.get(r["preset"])) for r in results]))
  if _COSTS.value:
    print(f"\n## The paper's run: {STEPS:,} steps × {batch} rows × {length} tokens\n")
    rows = []
    for preset in _PRESETS.value:
      if "large" in preset:
        continue
      # The global step's FLOPs: the 1-device compile's, else one device's × the devices.
      flops = one_device.get(preset) or next(
        (r["flops"] * r["devices"] for r in results if r["preset"] == preset), None
      )
      if flops:
        rows += cost_rows(preset, flops)
    header = ["model", "system", "chips", "peak TFLOP/s", "MFU", "hours", "chip-hours"]
    print(table(header, rows, align="ll" + "r" * 5))
  print(f"\n# wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  app.run(main)
