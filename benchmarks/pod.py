"""Pod-scale memory plan: the real train step compiled, never run, for 64 and 256 devices.

For each preset and mesh (data × fsdp × tensor over fake CPU devices), the masked-LM train
step of `train_step.py` (ours: `train.state.train_step`, AdamW through `make_optimizer`, the
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
    (`--check-flops`, on by default, compiles the same global step for 1 device to show it),
    next to the model FLOPs of `gpu.model_flops` (6 · N · tokens + decoder + attention).

From the global step's FLOPs, what the paper's run (70,000 steps) costs on a TPU v4-32, a
TPU v5e-64 and 8 H100 SXM at 40 % and 50 % MFU.

Caveat: the compiled program is XLA:CPU's. The shard sizes carry over to any backend; the
temporaries and collectives less so: XLA:CPU computes bfloat16 in float32 (its temporaries
hold float32 activations, and every collective here is float32) and forms no reduce-scatter
(FSDP's gradient reduction shows as an all-reduce of whole gradients, then a slice).

  python benchmarks/pod.py               # 4 presets × 4 meshes; 10-30 minutes on 2 cores
  python benchmarks/pod.py --presets bert-base --meshes 8x8x1 --no-check-flops
  python benchmarks/pod.py --presets bert-tiny --meshes 1x8x1 --batch 16 --length 32
"""

from __future__ import annotations

import argparse
import math
import os

if __name__ == "__main__":
  # Fake CPU devices must be asked for before jax is first imported: as many as the largest
  # mesh on the command line needs (256 by default). Only when run as a script: the tests
  # import this module inside their own 8-device process.
  _pre = argparse.ArgumentParser(add_help=False)
  _pre.add_argument("--devices", type=int, nargs="+", default=[256])
  _pre.add_argument("--meshes", nargs="+")
  _known, _ = _pre.parse_known_args()
  _count = max(
    [math.prod(int(s) for s in mesh.split("x")) for mesh in _known.meshes]
    if _known.meshes
    else _known.devices
  )
  os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={_count}"]
  ).strip()

import functools
import re
import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import flax.linen as nn
import gpu
import jax
import jax.numpy as jnp
import train_step

from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.models.params import count_params
from mobius_jax.sharding import DEFAULT_RULES, make_mesh, use_mesh
from train import objectives, optim, partitioning
from train import state as train_state

PRESETS = ("bert-base", "mobius_bert-base", "bert-large", "mobius_bert-large")
DEVICES = (64, 256)
VOCAB = 30_528  # 30,522 rounded up to a multiple of 64, as the training loop does
STEPS = 70_000  # the paper's (MosaicBERT's) pretraining run
MIB = 2**20
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# Dense bfloat16 peak per chip, TFLOP/s. Google Cloud's "TPU v4" page
# (cloud.google.com/tpu/docs/v4: 275 per chip; a v4-32 slice is 32 TensorCores, 16 chips),
# its "TPU v5e" page (cloud.google.com/tpu/docs/v5e: 197 per chip; v5e-64 is 64 chips) and
# NVIDIA's H100 Tensor Core GPU datasheet (H100 SXM BF16: 1,979 with sparsity, 989 dense).
SYSTEMS = (("TPU v4-32", 16, 275.0), ("TPU v5e-64", 64, 197.0), ("8 × H100 SXM", 8, 989.0))
MFUS = (0.4, 0.5)
# Bytes per element of HLO element types (sub-byte types count as one byte: none occur here).
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


def abstract_state(init_fn, mesh, rules=DEFAULT_RULES):
  """(state of `jax.ShapeDtypeStruct`s with their shardings, the shardings); no allocation."""
  boxed = jax.eval_shape(init_fn, jax.random.key(0))
  shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
  state = jax.tree.map(
    lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
    nn.meta.unbox(boxed),
    shardings,
  )
  return state, shardings


def compile_step(preset: str, mesh, batch: int, length: int, dtype: str) -> dict:
  """Lowers and compiles the train step for abstract inputs; returns what the tables show."""
  config = ModelConfig.preset(preset, vocab_size=VOCAB, dtype=dtype)
  model = MaskedLM(config)
  optimizer = optim.make_optimizer(train_step.optimizer_config())
  state, shardings = abstract_state(train_state.init_fn(model, optimizer, length), mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  masking = {**train_step.masking(length), "vocab_size": VOCAB}
  objective = objectives.MaskedLMObjective(model, masking)
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objective),
    in_shardings=(shardings, partitioning.batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  ids = jax.ShapeDtypeStruct((batch, length), jnp.int32, sharding=partitioning.batch_sharding(mesh))
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
  start = time.perf_counter()
  with use_mesh(mesh):
    lowered = step.lower(state, {"input_ids": ids}, rng)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
  compile_s = time.perf_counter() - start - lower_s
  memory = compiled.memory_analysis()
  return dict(
    preset=preset,
    mesh=dict(mesh.shape),
    devices=mesh.size,
    params=count_params(state.params),
    param_bytes=per_device_bytes(state.params),
    opt_bytes=per_device_bytes(state.opt_state),
    argument_bytes=memory.argument_size_in_bytes,
    output_bytes=memory.output_size_in_bytes,
    alias_bytes=memory.alias_size_in_bytes,
    temp_bytes=memory.temp_size_in_bytes,
    collectives=collectives(compiled.as_text()),
    flops=compiled.cost_analysis()["flops"],
    # gpu.py's count takes vocabulary 30,522 for the decoder term: 1e-5 of the total off.
    model_flops=gpu.model_flops(preset, state.params, batch, length),
    lower_s=lower_s,
    compile_s=compile_s,
  )


def parse_mesh(text: str) -> tuple[int, int, int]:
  """Parses "4x8x2" into (data, fsdp, tensor)."""
  sizes = tuple(int(s) for s in text.split("x"))
  if len(sizes) != 3:
    raise argparse.ArgumentTypeError(f"{text!r}: give data x fsdp x tensor, e.g. 4x8x2")
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


def memory_row(r: dict) -> str:
  mib = {k: r[k] / MIB for k in r if k.endswith("_bytes")}
  total = mib["argument_bytes"] + mib["output_bytes"] - mib["alias_bytes"] + mib["temp_bytes"]
  return (
    f"| {r['preset']} | {r['devices']} | {mesh_name(r['mesh'])} | {r['rows']} "
    f"| {r['params'] / 1e6:.1f} M | {mib['param_bytes']:.1f} | {mib['opt_bytes']:.1f} "
    f"| {mib['argument_bytes']:.1f} | {mib['output_bytes']:.1f} | {mib['alias_bytes']:.1f} "
    f"| {mib['temp_bytes']:.1f} | {total:.1f} | {r['lower_s']:.1f} | {r['compile_s']:.1f} |"
  )


def collective_row(r: dict) -> str:
  cells = [
    f"{n} / {b / MIB:.1f}" if n else "–" for n, b in (r["collectives"][k] for k in COLLECTIVES)
  ]
  return f"| {r['preset']} | {r['devices']} | {mesh_name(r['mesh'])} | {' | '.join(cells)} |"


def flops_row(r: dict, one_device: float | None) -> str:
  total = r["flops"] * r["devices"]
  check = (f"{one_device / 1e12:.2f}", f"{total / one_device:.4f}") if one_device else ("–", "–")
  return (
    f"| {r['preset']} | {r['devices']} | {mesh_name(r['mesh'])} | {r['flops'] / 1e12:.4f} "
    f"| {total / 1e12:.2f} | {' | '.join(check)} | {r['model_flops'] / 1e12:.2f} "
    f"| {total / r['model_flops']:.3f} |"
  )


def cost_rows(preset: str, step_flops: float) -> list[str]:
  """Hours and chip-hours of `STEPS` steps of `step_flops` on each system and MFU."""
  rows = []
  for system, chips, peak in SYSTEMS:
    for mfu in MFUS:
      hours = STEPS * step_flops / (chips * peak * 1e12 * mfu) / 3600
      rows.append(
        f"| {preset} | {system} | {chips} | {peak:.0f} | {mfu:.0%} | {hours:.1f} "
        f"| {hours * chips:.0f} |"
      )
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", nargs="+", default=list(PRESETS))
  parser.add_argument("--devices", type=int, nargs="+", default=list(DEVICES))
  parser.add_argument(
    "--meshes", type=parse_mesh, nargs="+", help="data x fsdp x tensor, e.g. 8x8x1 4x8x2"
  )
  parser.add_argument("--batch", type=int, default=4096)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument(
    "--check-flops",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="compile each preset's global step on 1 device too: is cost_analysis per device?",
  )
  parser.add_argument(
    "--costs", action=argparse.BooleanOptionalAction, default=True, help="the paper's run"
  )
  args = parser.parse_args(argv)

  meshes = args.meshes or [m for n in args.devices for m in default_meshes(n)]
  start = time.perf_counter()
  print(
    f"# {common.machine()}, {len(jax.devices())} fake devices; global step {args.batch} rows × "
    f"{args.length} tokens, {args.dtype} compute, float32 parameters and AdamW state, "
    f"vocabulary {VOCAB}; compiled, not run. MiB per device."
  )
  results, one_device = [], {}
  for preset in args.presets:
    if args.check_flops:
      mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
      r = compile_step(preset, mesh, args.batch, args.length, args.dtype)
      one_device[preset] = r["flops"]
      print(
        f"# {preset}: 1-device compile of the global step: {r['flops'] / 1e12:.2f} TFLOP "
        f"(lower {r['lower_s']:.1f} s, compile {r['compile_s']:.1f} s)",
        flush=True,
      )
    for data, fsdp, tensor in meshes:
      n = data * fsdp * tensor
      mesh = make_mesh(data, fsdp, tensor, devices=jax.devices()[:n])
      r = compile_step(preset, mesh, args.batch, args.length, args.dtype)
      r["rows"] = args.batch // (data * fsdp)
      results.append(r)
      print(f"# {memory_row(r)}", flush=True)

  print("\n## Memory per device (MiB)\n")
  print(
    common.table(
      [
        *("model", "devices", "data×fsdp×tensor", "rows/device", "parameters"),
        *("param MiB", "AdamW MiB", "arguments MiB", "outputs MiB", "aliased MiB"),
        *("temp MiB", "total MiB", "lower s", "compile s"),
      ]
    )
  )
  print("\n".join(memory_row(r) for r in results))
  print("\n## Collectives per device per step (count / MiB of results)\n")
  print(common.table(["model", "devices", "data×fsdp×tensor", *COLLECTIVES]))
  print("\n".join(collective_row(r) for r in results))
  print("\n## FLOPs per step (TFLOP)\n")
  print(
    common.table(
      [
        *("model", "devices", "data×fsdp×tensor", "XLA per device", "× devices"),
        *("1-device compile", "× devices ÷ 1-device", "model", "× devices ÷ model"),
      ]
    )
  )
  print("\n".join(flops_row(r, one_device.get(r["preset"])) for r in results))
  if args.costs:
    print(f"\n## The paper's run: {STEPS:,} steps × {args.batch} rows × {args.length} tokens\n")
    print(common.table(["model", "system", "chips", "peak TFLOP/s", "MFU", "hours", "chip-hours"]))
    for preset in args.presets:
      if "large" in preset:
        continue
      # The global step's FLOPs: the 1-device compile's, else one device's × the devices.
      flops = one_device.get(preset) or next(
        (r["flops"] * r["devices"] for r in results if r["preset"] == preset), None
      )
      if flops:
        print("\n".join(cost_rows(preset, flops)))
  print(f"\n# wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
