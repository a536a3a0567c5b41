"""Forward + backward time of Möbius attention against vanilla attention of equal real width.

Three variants per sequence length, timed in the same run and interleaved (round robin) so
that load on a shared machine hits them alike:
  * vanilla: `dot_product_attention` on real heads of width H;
  * möbius fused: `mobius_dot_product_attention` (hermitian scores) on complex heads of
    C = H / 2 dims, i.e. the same real width, through the same fused kernel;
  * naive complex64: `mobius_attention_reference`, complex64 einsums on the same inputs.
Each step is `jax.value_and_grad` of a scalar loss with respect to q, k and v, jitted.

  python benchmarks/attention.py                   # lengths 128, 512, 2048
  python benchmarks/attention.py --lengths 128,512 --repeats 3
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

import common  # first: it puts the repository root on sys.path
import jax
import jax.numpy as jnp
from absl import app, flags

import mobius_jax as mj
from train.markdown import table

_LENGTHS = flags.DEFINE_list("lengths", "128,512,2048", "Sequence lengths, comma-separated.")
_TOKENS = flags.DEFINE_integer("tokens", 4096, "batch × length per step.")
_HEADS = flags.DEFINE_integer("heads", 4, "Attention heads.")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 64, "Real head width H.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls of each step (the median counts).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Inputs' dtype.")


def vanilla(q, k, v):
  return mj.dot_product_attention(q[0], k[0], v[0])


def mobius_fused(q, k, v):
  return mj.mobius_dot_product_attention(q, k, v)


def mobius_naive(q, k, v):
  out = mj.mobius_attention_reference(*(jax.lax.complex(*x) for x in (q, k, v)))
  return jnp.real(out), jnp.imag(out)


def make_step(attention):
  def loss(q, k, v):
    return sum(jnp.sum(part**2) for part in jax.tree.leaves(attention(q, k, v)))

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def make_inputs(batch, length, heads, width, dtype, seed=0):
  """(re, im) pairs of [B, L, N, width] arrays for q, k and v."""
  keys = iter(jax.random.split(jax.random.key(seed), 6))
  pair = lambda: tuple(  # noqa: E731
    jax.random.normal(next(keys), (batch, length, heads, width), dtype) for _ in range(2)
  )
  return pair(), pair(), pair()


def time_variants(steps, inputs, repeats):
  """Median seconds per call of each step; compile first, then interleave the timed calls."""
  for name, step in steps.items():
    jax.block_until_ready(step(*inputs[name]))
  times = {name: [] for name in steps}
  for _ in range(repeats):
    for name, step in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(step(*inputs[name]))
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def main(argv):
  common.start(argv)
  heads, head_dim, tokens, repeats = _HEADS.value, _HEAD_DIM.value, _TOKENS.value, _REPEATS.value
  dtype = jnp.dtype(_DTYPE.value)
  steps = {
    "vanilla": make_step(vanilla),
    "möbius fused": make_step(mobius_fused),
    "naive complex64": make_step(mobius_naive),
  }
  print(
    f"# {datetime.date.today()}  jax {jax.__version__}  {jax.devices()[0].device_kind}  "
    f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores  "
    f"heads {heads}, H {head_dim} (C {head_dim // 2}), {_DTYPE.value}, "
    f"{tokens} tokens per step, median of {repeats}"
  )
  header = [
    *("length", "batch", "vanilla ms", "möbius fused ms", "naive complex64 ms"),
    *("fused / vanilla", "naive / fused"),
  ]
  rows = []
  for length in (int(n) for n in _LENGTHS.value):
    batch = max(1, tokens // length)
    real = make_inputs(batch, length, heads, head_dim, dtype)
    cplx = make_inputs(batch, length, heads, head_dim // 2, dtype)
    # The naive path needs complex64, so it always gets float32 parts.
    naive = jax.tree.map(lambda x: x.astype(jnp.float32), cplx)
    inputs = {"vanilla": real, "möbius fused": cplx, "naive complex64": naive}
    t = time_variants(steps, inputs, repeats)
    ms = {name: 1e3 * s for name, s in t.items()}
    rows.append(
      [
        *(str(length), str(batch), f"{ms['vanilla']:.1f}", f"{ms['möbius fused']:.1f}"),
        *(f"{ms['naive complex64']:.1f}", f"{t['möbius fused'] / t['vanilla']:.2f}×"),
        f"{t['naive complex64'] / t['möbius fused']:.2f}×",
      ]
    )
    common.progress(rows[-1])
  print(table(header, rows, align="r" * len(header)))


if __name__ == "__main__":
  app.run(main)
