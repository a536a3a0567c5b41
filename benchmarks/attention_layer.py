"""Forward + backward time and memory of a Möbius attention layer against a vanilla layer.

Three layers per sequence length, timed in the same run and interleaved (round robin):
  * vanilla: `SelfAttention`, hidden size H, N heads;
  * möbius H/2: `MobiusSelfAttention`, H/2 complex dims, N heads: the same number of real
    numbers per token as vanilla (equal real width);
  * möbius H: `MobiusSelfAttention`, H complex dims, N heads: the paper's width (twice the
    real numbers of vanilla).
Each step is `jax.value_and_grad` of a scalar loss with respect to the parameters and the
input, jitted; no dropout, no mask, so the fused `jax.nn.dot_product_attention` path runs.
Memory is XLA's compiled temporary buffer size (`memory_analysis().temp_size_in_bytes`), set
against the size of one float32 `[B, N, L, L]` score matrix: temp bytes at or above it mean
the scores are materialised (as XLA:CPU does).

  python benchmarks/attention_layer.py                   # H 768, 12 heads, lengths 128 … 2048
  python benchmarks/attention_layer.py --lengths 128,512 --hidden 64 --heads 2 --repeats 1
"""

from __future__ import annotations

import common  # first: it puts the repository root on sys.path
import jax
import jax.numpy as jnp
from absl import app, flags

from mobius_jax.layers import LayerConfig, MobiusSelfAttention, SelfAttention
from train.markdown import table

_LENGTHS = flags.DEFINE_list("lengths", "128,512,2048", "Sequence lengths, comma-separated.")
_TOKENS = flags.DEFINE_integer("tokens", 4096, "batch × length per step.")
_HIDDEN = flags.DEFINE_integer("hidden", 768, "Vanilla hidden size H.")
_HEADS = flags.DEFINE_integer("heads", 12, "Attention heads.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls of each step (the median counts).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")

MIB = 2**20


def make_layer(kind: str, hidden: int, heads: int, dtype: str):
  """(module, number of input parts): 1 for vanilla `[B, L, H]`, 2 for a Möbius pair."""
  if kind == "vanilla":
    config = LayerConfig(hidden_size=hidden, num_heads=heads, dtype=dtype)
    return SelfAttention(config), 1
  width = hidden // 2 if kind == "möbius H/2" else hidden
  config = LayerConfig(hidden_size=width, num_heads=heads, dtype=dtype)
  return MobiusSelfAttention(config), 2


def make_step(module, x):
  """A jitted (params, x) → (loss, grads) step and its freshly initialised parameters."""
  params = module.init(jax.random.key(0), x)["params"]

  def loss(params, x):
    out = module.apply({"params": params}, x)
    return sum(jnp.sum(part.astype(jnp.float32) ** 2) for part in jax.tree.leaves(out))

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), params


def make_input(parts: int, batch: int, length: int, width: int, dtype):
  keys = jax.random.split(jax.random.key(1), parts)
  x = tuple(jax.random.normal(k, (batch, length, width), dtype) for k in keys)
  return x[0] if parts == 1 else x


def main(argv):
  common.start(argv)
  hidden, heads, tokens, repeats = _HIDDEN.value, _HEADS.value, _TOKENS.value, _REPEATS.value
  dtype = _DTYPE.value
  kinds = ("vanilla", "möbius H/2", "möbius H")
  print(
    f"# {common.machine()}  H {hidden}, {heads} heads, {dtype}, "
    f"{tokens} tokens per step, median of {repeats}"
  )
  header = [
    *("length", "batch", "vanilla ms", "möbius H/2 ms", "möbius H ms"),
    *("H/2 / vanilla", "H / vanilla", "scores MiB", "vanilla temp MiB"),
    *("möbius H/2 temp MiB", "möbius H temp MiB"),
  ]
  rows = []
  for length in (int(n) for n in _LENGTHS.value):
    batch = max(1, tokens // length)
    calls, temp = {}, {}
    for kind in kinds:
      module, parts = make_layer(kind, hidden, heads, dtype)
      width = hidden // 2 if kind == "möbius H/2" else hidden
      x = make_input(parts, batch, length, width, jnp.dtype(dtype))
      step, params = make_step(module, x)
      temp[kind] = step.lower(params, x).compile().memory_analysis().temp_size_in_bytes / MIB
      calls[kind] = lambda step=step, params=params, x=x: jax.block_until_ready(step(params, x))
    t = common.time_interleaved(calls, repeats)
    ms = {kind: 1e3 * s for kind, s in t.items()}
    scores = batch * heads * length**2 * 4 / MIB
    rows.append(
      [
        *(str(length), str(batch), *(f"{ms[kind]:.1f}" for kind in kinds)),
        *(f"{t['möbius H/2'] / t['vanilla']:.2f}×", f"{t['möbius H'] / t['vanilla']:.2f}×"),
        *(f"{scores:.0f}", *(f"{temp[kind]:.0f}" for kind in kinds)),
      ]
    )
    common.progress(rows[-1])
  print(table(header, rows, align="r" * len(header)))


if __name__ == "__main__":
  app.run(main)
