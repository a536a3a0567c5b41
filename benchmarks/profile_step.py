"""Where a masked-LM train step's time goes: XLA:CPU op times from a profile, by kind of work.

Traces `--steps` steps of one variant of `train_step.py` with `jax.profiler` (a Perfetto
trace), attributes each XLA op's time to model code through the op's `op_name` metadata in
the compiled module, and sums it by kind:

  * matmul, encoder / matmul, output layer: dot fusions (projections, feed-forward,
    attention scores; the tied decoder), forward and backward;
  * dropout random numbers: threefry and the Bernoulli draws of dropout masks, where they are
    ops of their own (flax's; `mobius_jax.dropout`'s fuse into its multiply: other model work);
  * outside the model: what the step does around the model (BERT's masking, the loss and its
    gradient, the tied word table's two gradients summed, clipping, AdamW, finite checks);
  * other model work: softmax, LayerNorm, GELU, dropout's multiplies, gathers, layout copies;
  * runtime: ops the compiler added without metadata (buffer copies, loop control).

Op times overlap when XLA runs independent ops at once, so their sum exceeds the wall time;
shares are of the sum.

  python benchmarks/profile_step.py --size small
  python benchmarks/profile_step.py --size tiny --variant "hf bert" --steps 2
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import re
import tempfile

import common  # first: it puts the repository root on sys.path
import jax
import steps
from absl import app, flags

from mobius_jax.sharding import make_mesh
from train.markdown import table

_SIZE = flags.DEFINE_string("size", "small", "Model size: the preset bert-SIZE (or its variant).")
_VARIANT = flags.DEFINE_enum("variant", "bert", steps.VARIANTS, "Which step of train_step.py.")
_BATCH = flags.DEFINE_integer("batch", 8, "Rows per step.")
_LENGTH = flags.DEFINE_integer("length", 128, "Tokens per row.")
_STEPS = flags.DEFINE_integer("steps", 3, "Steps traced.")

KINDS = (
  "matmul, encoder",
  "matmul, output layer",
  "dropout random numbers",
  "outside the model",
  "other model work",
  "runtime",
)


def kind_of(op_name: str | None, fusion: str) -> str:
  """One of `KINDS` for an XLA op named `fusion` whose metadata says `op_name`."""
  if not op_name:
    return "runtime"
  if re.search(r"bernoulli|_uniform|threefry|_random_bits", op_name):
    return "dropout random numbers"
  if not re.search(r"jvp\(\w", op_name):  # not inside a module's forward or backward
    return "outside the model"
  if "dot_general" in op_name:
    head = re.search(r"mlm_head|cls/predictions", op_name)
    return "matmul, output layer" if head else "matmul, encoder"
  return "other model work"


def op_names(compiled) -> dict[str, str]:
  """XLA op name → its `op_name` metadata, from the compiled module's text."""
  names = {}
  for line in compiled.as_text().splitlines():
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*op_name=\"([^\"]*)\"", line)
    if match:
      names.setdefault(match.group(1), match.group(2))
  return names


def op_times(trace_dir: pathlib.Path) -> dict[str, float]:
  """Seconds per XLA op name, summed over the trace (runtime bookkeeping left out)."""
  (path,) = trace_dir.glob("**/*.trace.json.gz")
  with gzip.open(path) as file:
    events = json.load(file)
  events = events["traceEvents"] if isinstance(events, dict) else events
  times = collections.Counter()
  for event in events:
    name = event.get("name", "")
    if event.get("ph") != "X" or name.startswith(("$", "ThunkExecutor", "Slinky", "end: ")):
      continue
    times[name] += event.get("dur", 0) / 1e6
  return times


def profile(runner, steps: int) -> dict[str, float]:
  """Seconds per step of each kind of work, from a trace of `steps` calls of `runner`."""
  runner()  # warm
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(steps):
        runner()
    times = op_times(pathlib.Path(tmp))
  names = op_names(runner.compiled)
  by_kind = dict.fromkeys(KINDS, 0.0)
  for op, seconds in times.items():
    if op in names or re.match(r"[\w.\-]+$", op):  # an XLA op, with or without metadata
      by_kind[kind_of(names.get(op), op)] += seconds / steps
  return by_kind


def main(argv):
  common.start(argv)
  mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
  batch = jax.device_put(steps.random_batch(_BATCH.value, _LENGTH.value))
  step, state, _ = steps.build(_VARIANT.value, _SIZE.value, _LENGTH.value, mesh)
  runner, _ = steps.compile_runner(step, state, batch, mesh)
  by_kind = profile(runner, _STEPS.value)
  total = sum(by_kind.values())
  print(
    f"# {common.machine()}  {_VARIANT.value}-{_SIZE.value}, batch {_BATCH.value} × {_LENGTH.value}"
  )
  rows = [
    [kind, f"{1e3 * seconds:.0f}", f"{seconds / total:.0%}"] for kind, seconds in by_kind.items()
  ]
  rows.append(["all ops (overlapping)", f"{1e3 * total:.0f}", "100%"])
  print(table(["kind of work", "ms per step", "share"], rows))


if __name__ == "__main__":
  app.run(main)
