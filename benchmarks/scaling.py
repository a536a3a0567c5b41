"""The masked-LM train step on 1, 2, 4 and 8 fake CPU devices under each sharding.

For each model and each sharding (data, fsdp or tensor parallel: one mesh axis of n devices,
the others 1; `mobius_jax.sharding.DEFAULT_RULES`), the step of `train_step.py` (ours, logits
at the masked positions) is compiled for n = 1, 2, 4 and 8 devices, and the n runs are timed
interleaved. Correctness: every step's loss against the 1-device run's, from the same
initial parameters, batch and random streams. Overhead: step time against 1 device.

Fake CPU devices (`--xla_force_host_platform_device_count`) all share the machine's cores, so
this measures the cost of partitioning (collectives, resharding, smaller kernels), not scaling.

  python benchmarks/scaling.py
  python benchmarks/scaling.py --models bert-tiny --devices 1 2 --shardings data --repeats 1
"""

import os

# Fake CPU devices must be asked for before jax is first imported.
os.environ["XLA_FLAGS"] = " ".join(
  [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()

import argparse

import common
import jax
import train_step

from mobius_jax.sharding import make_mesh
from train import partitioning

# Vocabulary rounded up to a multiple of 64 (as the training loop does), so that the tensor
# axis splits the word table evenly.
VOCAB = 30_528


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=["bert-mini", "mobius_bert-mini"])
  parser.add_argument("--shardings", nargs="+", default=["data", "fsdp", "tensor"])
  parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)

  print(
    f"# {common.machine()}, {len(jax.devices())} fake devices  float32, batch {args.batch} × "
    f"length {args.length}, vocabulary {VOCAB}, median of {args.repeats}; |Δloss|: largest "
    f"over the {args.repeats + 1} steps against 1 device"
  )
  print(common.table(["model", "sharding", "devices", "step ms", "÷ 1 device", "max |Δloss|"]))
  batch = train_step.random_batch(args.batch, args.length)
  for preset in args.models:
    for sharding in args.shardings:
      runners = {}
      for n in args.devices:
        mesh = make_mesh(**{"data": 1, sharding: n}, devices=jax.devices()[:n])
        step, state, _ = train_step.our_step(preset, args.length, mesh, vocab_size=VOCAB)
        sharded = jax.device_put(batch, partitioning.batch_sharding(mesh))
        runners[n], _ = train_step.compile_runner(step, state, sharded, mesh)
      t = common.time_interleaved(runners, args.repeats)
      base = args.devices[0]
      for n, runner in runners.items():
        diff = max(
          abs(float(a) - float(b)) for a, b in zip(runner.losses, runners[base].losses, strict=True)
        )
        print(
          f"| {preset} | {sharding} | {n} | {1e3 * t[n]:.1f} | {t[n] / t[base]:.2f}× "
          f"| {diff:.1e} |",
          flush=True,
        )


if __name__ == "__main__":
  main()
