"""Masked-LM train step tokens/s: our BERT and MöbiusBERT against Hugging Face's FlaxBert.

Per model size, these steps are compiled, then timed in the same run, interleaved (round robin):
  * hf bert: `transformers.FlaxBertForMaskedLM`; logits at all B × L positions (that is how
    the model works), the loss over the masked ones (as in HF's `run_mlm_flax.py`);
  * bert: our `MaskedLM` through `train.core.state.train_step`; the last layer's output and the
    logits at the masked positions only (`masked_positions`, 15 % of the tokens);
  * bert, full last layer: ours with the last layer at all positions, the logits at the
    masked ones (an ablation: what the last layer's fast path gains);
  * bert, all logits: our model and step doing HF's work: the last layer and the logits at
    all positions, the loss over all positions with weight 0 where nothing was masked, as in
    HF's step (an ablation: the same arithmetic as HF, so its ratio is the speed of our code);
  * möbius bert: our MöbiusBERT preset of the same size (framed: Möbius first and last layers).
All share the project's optimiser (`train.core.optim.make_optimizer`: clipping, AdamW with the
default config's hyperparameters and weight-decay mask), BERT's masking (`mask_tokens`, done
inside the step for all), dropout 0.1 (`--dropout`), float32, vocabulary 30,522 and one fixed
batch of random token ids (no input pipeline: the step alone is timed). Compile time is the
wall time of `jit(...).lower(...).compile()`; GFLOP is XLA's count for the compiled step
(`cost_analysis()`), so `hf GFLOP ÷ GFLOP` is the speed-up the work alone allows.

How close to the machine: a float32 GEMM (N × N by N × N, N = `--gemm`) is timed in the same
round robin; its fastest call's FLOP rate is the machine's attainable rate, and `bound ms` =
GFLOP ÷ that rate, the time a step would take if all its work ran as fast as one large GEMM.
`bound ÷ step` is the share of that speed the step reaches.

transformers is no dependency of the project; install it into the benchmark's environment:
`pip install --no-deps transformers==4.57.6` plus its small dependencies.

  python benchmarks/train_step.py                          # tiny, small, base
  python benchmarks/train_step.py --sizes tiny --batch 2 --length 16 --repeats 1
  python benchmarks/train_step.py --sizes tiny,small --variants 'hf bert,"bert, all logits"'

(`--variants` is comma-separated: quote a name that holds a comma, with no space before it.)
"""

from __future__ import annotations

import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import jax
import jax.numpy as jnp
import steps
from absl import app, flags

from mobius_jax.sharding import make_mesh
from train.markdown import table

_SIZES = flags.DEFINE_list("sizes", "tiny,small,base", "Model sizes (presets bert-SIZE, …).")
_BATCH = flags.DEFINE_integer("batch", 8, "Rows per step.")
_LENGTH = flags.DEFINE_integer("length", 128, "Tokens per row.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls of each step (the median counts).")
_VARIANTS = flags.DEFINE_list(
  "variants", list(steps.VARIANTS), f"Some of {', '.join(map(repr, steps.VARIANTS))}."
)
_DROPOUT = flags.DEFINE_float("dropout", 0.1, "Every model's dropout rate.")
_GEMM = flags.DEFINE_integer("gemm", 2048, "The reference GEMM's size N.")
flags.register_validator(
  "variants",
  lambda names: set(names) <= set(steps.VARIANTS),
  message=f"--variants: some of {steps.VARIANTS}, comma-separated; quote a name with a comma.",
)


class Gemm:
  """A float32 n × n by n × n matrix product; each call runs one, and its fastest time counts.

  The fastest, not the median: the machine's attainable rate is what the bound needs, and the
  product's time swings more than the steps' (126–212 GFLOP/s at n = 2048 on the development
  machine, the low values right after a large model's step).
  """

  def __init__(self, n: int):
    self.a, self.b = (jax.random.normal(jax.random.key(i), (n, n)) for i in range(2))
    self.product, self.flops, self.times = jax.jit(jnp.matmul), 2 * n**3, []

  def __call__(self):
    start = time.perf_counter()
    self.product(self.a, self.b).block_until_ready()
    self.times.append(time.perf_counter() - start)

  @property
  def rate(self) -> float:
    """FLOP/s of the fastest call after the first (which compiles)."""
    return self.flops / min(self.times[1:])


def main(argv):
  common.start(argv)
  mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
  variants, repeats = _VARIANTS.value, _REPEATS.value
  tokens = _BATCH.value * _LENGTH.value
  print(
    f"# {common.machine()}  float32, dropout {_DROPOUT.value}, batch {_BATCH.value} × length "
    f"{_LENGTH.value} = {tokens} tokens per step, vocabulary {steps.VOCAB}, median of {repeats}"
  )
  header = [
    *("size", "model", "parameters", "compile s", "step ms", "tokens/s"),
    *("÷ hf tokens/s", "÷ bert step time", "GFLOP", "hf GFLOP ÷ GFLOP"),
    *("bound ms", "bound ÷ step"),
  ]
  rows = []
  for size in _SIZES.value:
    batch = jax.device_put(steps.random_batch(_BATCH.value, _LENGTH.value))
    runners, compile_s, params = {}, {}, {}
    for name in variants:
      step, state, params[name] = steps.build(name, size, _LENGTH.value, mesh, _DROPOUT.value)
      runners[name], compile_s[name] = steps.compile_runner(step, state, batch, mesh)
    gemm = Gemm(_GEMM.value)
    t = common.time_interleaved({**runners, "gemm": gemm}, repeats)
    rate = gemm.rate  # FLOP/s
    for name in variants:
      vs_hf = f"{t['hf bert'] / t[name]:.2f}×" if "hf bert" in t else ""
      vs_bert = f"{t[name] / t['bert']:.2f}×" if "bert" in t else ""
      flops = runners[name].flops
      flops_vs_hf = f"{runners['hf bert'].flops / flops:.2f}×" if "hf bert" in t else ""
      rows.append(
        [
          *(size, name, f"{params[name] / 1e6:.1f} M", f"{compile_s[name]:.1f}"),
          *(f"{1e3 * t[name]:.0f}", f"{tokens / t[name]:.0f}", vs_hf, vs_bert),
          *(f"{flops / 1e9:.1f}", flops_vs_hf, f"{1e3 * flops / rate:.0f}"),
          f"{flops / rate / t[name]:.0%}",
        ]
      )
      common.progress(rows[-1])
    first = {name: f"{float(r.losses[0]):.3f}" for name, r in runners.items()}
    print(
      f"# {size}: first-step losses {first}; GEMM {_GEMM.value}³: {rate / 1e9:.0f} GFLOP/s",
      flush=True,
    )
  print(table(header, rows, align="ll" + "r" * 10))


if __name__ == "__main__":
  app.run(main)
