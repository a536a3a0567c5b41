"""The masked-LM train step on 1, 2, 4 and 8 fake CPU devices under each sharding.

For each model and each sharding (data, fsdp or tensor parallel: one mesh axis of n devices,
the others 1; `mobius_jax.sharding.DEFAULT_RULES`), the step of `train_step.py` (ours, logits
at the masked positions) is compiled for n = 1, 2, 4 and 8 devices, and the n runs are timed
interleaved. Correctness: every step's loss against the 1-device run's, from the same
initial parameters, batch and random streams. Overhead: step time against 1 device.

Fake CPU devices (`--xla_force_host_platform_device_count`) all share the machine's cores, so
this measures the cost of partitioning (collectives, resharding, smaller kernels), not scaling.

  python benchmarks/scaling.py
  python benchmarks/scaling.py --models bert-tiny --devices 1,2 --shardings data --repeats 1
"""

import os

# Fake CPU devices must be asked for before jax is first imported.
os.environ["XLA_FLAGS"] = " ".join(
  [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()

import common
import jax
import steps
from absl import app, flags

from mobius_jax.sharding import make_mesh
from train.core import partitioning
from train.markdown import table

_MODELS = flags.DEFINE_list("models", "bert-mini,mobius_bert-mini", "Model presets.")
_SHARDINGS = flags.DEFINE_list("shardings", "data,fsdp,tensor", "Mesh axes, one at a time.")
_DEVICES = flags.DEFINE_list(
  "devices", "1,2,4,8", "Device counts (at most 8); the first is the base."
)
_BATCH = flags.DEFINE_integer("batch", 8, "Rows per step.")
_LENGTH = flags.DEFINE_integer("length", 128, "Tokens per row.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls of each step (the median counts).")

VOCAB = steps.PADDED_VOCAB  # a multiple of 64: the tensor axis splits the word table evenly


def main(argv):
  common.start(argv)
  devices, repeats, length = [int(n) for n in _DEVICES.value], _REPEATS.value, _LENGTH.value
  print(
    f"# {common.machine()}, {len(jax.devices())} fake devices  float32, batch {_BATCH.value} × "
    f"length {length}, vocabulary {VOCAB}, median of {repeats}; |Δloss|: largest "
    f"over the {repeats + 1} steps against 1 device"
  )
  rows = []
  batch = steps.random_batch(_BATCH.value, length)
  for preset in _MODELS.value:
    for sharding in _SHARDINGS.value:
      runners = {}
      for n in devices:
        mesh = make_mesh(**{"data": 1, sharding: n}, devices=jax.devices()[:n])
        step, state, _ = steps.our_step(preset, length, mesh, vocab_size=VOCAB)
        sharded = jax.device_put(batch, partitioning.batch_sharding(mesh))
        runners[n], _ = steps.compile_runner(step, state, sharded, mesh)
      t = common.time_interleaved(runners, repeats)
      base = devices[0]
      for n, runner in runners.items():
        diff = max(
          abs(float(a) - float(b)) for a, b in zip(runner.losses, runners[base].losses, strict=True)
        )
        rows.append(
          [preset, sharding, str(n), f"{1e3 * t[n]:.1f}", f"{t[n] / t[base]:.2f}×", f"{diff:.1e}"]
        )
        common.progress(rows[-1])
  header = ["model", "sharding", "devices", "step ms", "÷ 1 device", "max |Δloss|"]
  print(table(header, rows, align="llrrrr"))


if __name__ == "__main__":
  app.run(main)
