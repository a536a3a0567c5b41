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

import argparse
import collections
import gzip
import json
import pathlib
import re
import tempfile

import common  # first: it puts the repository root on sys.path
import jax
import train_step

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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="small")
  parser.add_argument("--variant", default="bert", choices=train_step.VARIANTS)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args(argv)

  mesh = train_step.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  batch = jax.device_put(train_step.random_batch(args.batch, args.length))
  step, state, _ = train_step.build(args.variant, args.size, args.length, mesh)
  runner, _ = train_step.compile_runner(step, state, batch, mesh)
  by_kind = profile(runner, args.steps)
  total = sum(by_kind.values())
  print(f"# {common.machine()}  {args.variant}-{args.size}, batch {args.batch} × {args.length}")
  print(common.table(["kind of work", "ms per step", "share"], align="---"))
  for kind, seconds in by_kind.items():
    print(f"| {kind} | {1e3 * seconds:.0f} | {seconds / total:.0%} |")
  print(f"| all ops (overlapping) | {1e3 * total:.0f} | 100% |")


if __name__ == "__main__":
  main()
