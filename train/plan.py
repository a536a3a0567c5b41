"""Plans a config's train step for a TPU slice with the TPU compiler, on a machine without one.

python -m train.plan --config configs/mobius_bert_base_c4.py --topology v5e:16x16
python -m train.plan --config configs/bert_base_c4.py --topology v5p:4x4x8 \
  --config.mesh.fsdp=16 --config.mesh.data=-1
python -m train.plan --config configs/mobius_bert_base_c4.py --topology v5e:16x16 \
  --model_override attention_implementation=splash --nobisect

The config's real masked-LM train step (its model and overrides, objective, optimiser, mesh,
logical axis rules, dtype, batch and micro-batches) is lowered from abstract inputs and compiled
by libtpu for the topology's compile-only devices: nothing is allocated, no data or tokenizer
read (the vocabulary: `train.core.plan.plan_vocab_size`). Per chip it prints the parameter and
optimiser shards, the compiler's buffers against the chip's HBM, the largest batch the compiler
accepts (bisection; `--nobisect` skips it), XLA's FLOPs and collectives, and the compiler's
estimated step time (`optimal_seconds`) with the MFU, tokens/s and chip-hours it implies.
Needs the [tpu] extra (libtpu): pip install -c constraints.txt -e ".[tpu]". Without it,
benchmarks/pod.py plans the step on fake CPU devices.
"""

import dataclasses
import importlib.metadata
import json
import os
import pathlib
import sys

from absl import flags
from ml_collections import config_flags

from train import cli, files
from train.core import plan, search
from train.core import topology as tpu
from train.markdown import table

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "A configs/*.py file.")
_TOPOLOGY = flags.DEFINE_string(
  "topology", None, "A TPU slice as libtpu names it, e.g. v5e:16x16, v5p:4x4x8, v6e:16x16."
)
flags.mark_flag_as_required("topology")
_MODEL_OVERRIDE = flags.DEFINE_multi_string(
  "model_override",
  [],
  "KEY=VALUE added to config.model_overrides, also for keys the config file does not set "
  "(e.g. attention_implementation=splash).",
)
_BISECT = flags.DEFINE_bool("bisect", True, "Search the largest batch that fits (compiles).")
_MAX_ROWS = flags.DEFINE_integer(
  "max_rows_per_chip", 1024, "The search's upper limit, in rows per data-parallel chip."
)
_JSON = flags.DEFINE_string("json", None, "Also write the results to this JSON file.")

MIB = 2**20


def _set_libtpu_environment(topology: str) -> None:
  """Names the slice for libtpu where nothing does, so that it does not warn that it cannot find
  a TPU (TPU_ACCELERATOR_TYPE, TPU_WORKER_HOSTNAMES); what it compiles for is the topology."""
  kind, _, shape = topology.partition(":")
  chips = 1
  for size in shape.split("x"):
    chips *= int(size) if size.isdigit() else 1
  cores = 2 * chips if kind in ("v4", "v5p") else chips  # these names count TensorCores
  names = {"v5e": "v5litepod", "v6e": "v6e", "v5p": "v5p", "v4": "v4"}
  if kind in names:
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", f"{names[kind]}-{cores}")
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")


def _mib(n: float) -> str:
  return f"{n / MIB:,.1f}"


def _gib(n: float) -> str:
  return f"{n / 2**30:.2f}"


def _rows(n: float) -> str:
  return f"{n:,.0f}"


def run_plan(config, topology_name: str) -> dict:
  """Compiles, bisects and prints; returns what it printed as a dict (for --json)."""
  import jax

  from train.core import experiment

  vocab = plan.plan_vocab_size(config)[1]
  topology = tpu.get_topology(topology_name)
  chip, chips = topology.chip, topology.num_chips
  mesh = tpu.topology_mesh(topology, config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  sizes = dict(mesh.shape)
  parallel = sizes["data"] * sizes["fsdp"]
  model_config = experiment.build_model(config, vocab, None)[1]
  usable = tpu.compiler_hbm_bytes(topology)
  step = plan.compile_train_step(config, mesh)
  length, batch = config.max_len, config.batch_size
  versions = f"jax {jax.__version__}, libtpu {importlib.metadata.version('libtpu')}"
  attention = model_config.attention_implementation or "default (XLA)"
  print(
    f"# TPU plan of {config.model} ({step.params / 1e6:.1f} M parameters, attention "
    f"{attention}) on {topology_name}: {chips} × {chip.name}, mesh data {sizes['data']} × fsdp "
    f"{sizes['fsdp']} × tensor {sizes['tensor']}; global batch {batch:,} × {length} tokens "
    f"({batch // parallel} rows per data-parallel chip, {config.grad_accum_steps} "
    f"micro-batch{'es' if config.grad_accum_steps > 1 else ''}), {config.dtype} compute, "
    f"vocabulary {vocab:,}. Compiled by the TPU compiler ({versions}) for compile-only "
    f"devices, never run; compile {step.compile_s:.0f} s."
  )
  _print_memory(step, chip, usable)
  result = {
    "config": {"model": config.model, "batch_size": batch, "max_len": length},
    "topology": topology_name,
    "chip": chip.name,
    "chips": chips,
    "mesh": sizes,
    "attention": attention,
    "versions": versions,
    "hbm_bytes": chip.hbm_bytes,
    "compiler_hbm_bytes": usable,
    "step": dataclasses.asdict(step),
  }
  if _BISECT.value:
    result.update(_bisect(config, mesh, step, parallel, usable or chip.hbm_bytes))
  if step.fits:
    result["estimates"] = _print_costs(config, step, model_config, chip, chips, vocab)
  return result


def _print_memory(step, chip, usable: int | None) -> None:
  """The memory section: shard bytes, the compiler's buffers, fits or not."""
  hbm = f"{_gib(chip.hbm_bytes)} GiB (Google Cloud's TPU {chip.kind} page)"
  if usable:
    hbm += f"; the compiler lets a program use {_gib(usable)} GiB"
  print(f"\n## Memory per chip (MiB)\n\nHBM per chip: {hbm}.\n")
  rows = [
    ["parameters (shards of the sharded state)", _mib(step.param_bytes)],
    ["optimiser state (AdamW moments, shards)", _mib(step.opt_bytes)],
  ]
  if step.fits:
    m = step.memory
    rows += [
      ["compiler: arguments", _mib(m["argument"])],
      ["compiler: outputs", _mib(m["output"])],
      ["compiler: outputs aliased to the donated state", _mib(m["alias"])],
      ["compiler: temporaries", _mib(m["temp"])],
      ["compiler: program code", _mib(m["code"])],
      ["compiler: total (arguments + outputs − aliased + temporaries + code)", _mib(m["total"])],
    ]
    verdict = f"fits: {m['total'] / chip.hbm_bytes:.1%} of the chip's HBM"
  else:
    verdict = f"does NOT fit; the compiler: {step.error}"
  print(table(["per chip", "MiB"], rows))
  print(f"\nThe compiler accepts the program: {verdict}.")


def _bisect(config, mesh, step, parallel: int, capacity: int) -> dict:
  """The largest batch the compiler accepts, by bisection; each probe is a compile."""
  batch = config.batch_size
  unit = parallel * config.grad_accum_steps
  start = batch if batch % unit == 0 else unit
  limit = max(_MAX_ROWS.value * parallel // unit, 1) * unit
  plans = {batch: step}

  def probe(rows: int) -> tuple[bool, float | None]:
    if rows not in plans:
      plans[rows] = plan.compile_train_step(config, mesh, rows)
      verdict = "fits" if plans[rows].fits else "does not fit"
      print(f"  {rows // parallel} rows per chip: {verdict} ({plans[rows].compile_s:.0f} s)")
    found = plans[rows]
    return found.fits, found.memory.get("total")

  print(
    "\n## The largest batch the compiler accepts\n\nEach probe is a compile; near the HBM "
    "limit the compiler works hardest (minutes each on a small CPU; --nobisect skips this)."
  )
  largest, probes = search.largest_fitting(probe, unit, start, limit=limit, capacity=capacity)
  tried = ", ".join(f"{rows // parallel}{'✓' if ok else '✗'}" for rows, ok in probes)
  print(f"\nRows per chip tried: {tried}.")
  if largest is None:
    print(f"Not even {unit // parallel} row per chip fits.")
  else:
    best = plans[largest].memory["total"]
    at_limit = " (the search's limit, --max_rows_per_chip)" if largest == limit else ""
    print(
      f"Largest: {largest // parallel} rows per data-parallel chip{at_limit}, a global batch "
      f"of {largest:,} ({config.grad_accum_steps} micro-batch"
      f"{'es' if config.grad_accum_steps > 1 else ''}); the compiler's total "
      f"{_mib(best)} MiB per chip."
    )
  return {"largest_batch": largest, "probes": probes}


def _print_costs(config, step, model_config, chip, chips: int, vocab: int) -> dict:
  """FLOPs, collectives, the compiler's estimate and what it implies; returns the estimates."""
  batch, length = config.batch_size, config.max_len

  flops = step.cost["flops"]
  print("\n## FLOPs and collectives per chip per step\n")
  print(
    f"XLA's FLOPs: {flops / 1e12:.3f} TFLOP per chip, {flops * chips / 1e12:.1f} TFLOP over "
    f"the {chips} chips; bytes accessed {step.cost['bytes_accessed'] / 2**30:.2f} GiB per chip.\n"
  )
  rows = [[kind, str(n), _mib(b)] for kind, (n, b) in step.collectives.items()]
  print(table(["collective (compiled program, one chip's)", "count", "MiB of results"], rows))

  steps = config.num_train_steps
  predictions = plan.masking_kwargs(config, vocab)["max_predictions"]
  kernel_flops = plan.kernel_attention_flops(model_config, batch, length, predictions)
  if kernel_flops:
    print(
      f"\nXLA's count leaves out the splash kernel's FLOPs (a custom call): "
      f"{kernel_flops / chips / 1e12:.3f} TFLOP per chip by the model count, added below."
    )
  derived = plan.estimates(step, chip, chips, batch * length, steps, kernel_flops)
  seconds = step.cost["optimal_seconds"]
  print("\n## The compiler's estimated step time, and what it implies\n")
  if seconds <= 0:
    print("This libtpu's cost analysis gives no `optimal_seconds`.")
  else:
    rows = [
      ["step time (the compiler's estimate, `optimal_seconds`)", f"{seconds * 1e3:,.1f} ms"],
      [
        f"MFU it implies (FLOPs ÷ time ÷ peak {chip.peak_flops / 1e12:.0f} TFLOP/s)",
        f"{derived['mfu']:.1%}",
      ],
      ["tokens/s it implies (whole slice)", _rows(derived["tokens_per_s"])],
    ]
    print(table(["", "value"], rows))
    if step.cost["concat_bitcasts"]:
      print(
        f"\nThe raw `optimal_seconds` is {step.cost['optimal_seconds_raw']:.5f} s: this libtpu "
        f"counts −1 s for each of the program's {step.cost['concat_bitcasts']} ConcatBitcast "
        "custom calls, added back here (train.core.plan.cost_summary)."
      )
  print(f"\n## The paper's run: {steps:,} steps of {batch:,} × {length} tokens (derived)\n")
  rows = []
  if seconds > 0:
    rows.append(
      [
        "at the compiler's estimate",
        f"{derived['hours']:,.1f}",
        _rows(derived["chip_hours"]),
      ]
    )
  rows.append(
    [
      "at 50 % MFU",
      f"{derived['hours_at_50']:,.1f}",
      _rows(derived["chip_hours_at_50"]),
    ]
  )
  print(table(["", "hours", f"chip-hours ({chips} chips)"], rows, align="lrr"))
  return derived


def main():
  import jax

  # The plan compiles for compile-only TPU devices: it needs no TPU backend, and a machine
  # without a TPU would only try (and warn) to start one.
  jax.config.update("jax_platforms", "cpu")
  _set_libtpu_environment(_TOPOLOGY.value)
  sys.stdout.reconfigure(line_buffering=True)  # each compile takes minutes: show each line
  config = _CONFIG.value
  try:
    overrides = cli.parse_overrides(_MODEL_OVERRIDE.value, "--model_override")
    with config.unlocked():
      config.model_overrides.update(overrides)
    plan.check_plan_config(config)
    tpu.require_libtpu()
    result = run_plan(config, _TOPOLOGY.value)
  except (tpu.LibtpuMissingError, tpu.UnknownTopologyError, ValueError) as error:
    sys.exit(f"Error: {error}")
  if _JSON.value:
    files.write_text(pathlib.Path(_JSON.value), json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
  cli.run(main)
