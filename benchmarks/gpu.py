"""BERT-base and MöbiusBERT-base train steps on one GPU: step time, tokens/s and MFU.

One prepared run: for each length (128 and 512) the masked-LM train step of `train_step.py`
(ours: `train.core.state.train_step`, AdamW, the last layer and the logits at the masked positions)
of each model, in bfloat16 compute with float32 parameters, with the fused attention's
implementation `cudnn` and `xla` (`jax.nn.dot_product_attention`), compiled, then timed
interleaved. Attention dropout is 0 (the fused kernels take none); hidden dropout stays 0.1.
Memory is XLA's compiled temporary buffer size (`memory_analysis().temp_size_in_bytes`: the
gradients, activations and the attention's buffers), next to the size of one bfloat16
`[B, N, L, L]` score matrix per layer: the xla path materialises the scores and cuDNN's fused
kernel does not, so at one length their difference is the memory the fused kernel saves.

MFU = model FLOPs per second / the device's dense bfloat16 peak (`PEAK_TFLOPS`, or
`--peak_tflops`). Model FLOPs per step: 6 · N · tokens, N the parameters outside the embedding
tables (a complex weight counts as its two real numbers), plus the tied decoder at the masked
positions, 6 · H · V · masked tokens, plus attention, 12 · B · L² · heads · head width per
layer (the real width: 2 · D for a Möbius head, whose parts run concatenated). Only the work
the step does is counted: the last layer's weights other than its keys' and values', and the
masked-LM head's, at the masked tokens only, and its attention for those queries only.

Writes `gpu.json` and `gpu.md` into `--out` (default `$OUT`; nothing written if neither).

  python benchmarks/gpu.py                     # on a GPU: base, lengths 128 and 512
  python benchmarks/gpu.py --smoke             # a minute on a CPU: tiny, length 32, xla only
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import jax
import steps
from absl import app, flags

from mobius_jax.models import ModelConfig
from mobius_jax.sharding import make_mesh
from train.markdown import table

_SIZE = flags.DEFINE_string("size", "base", "Model size: the presets bert-SIZE, mobius_bert-SIZE.")
_LENGTHS = flags.DEFINE_list("lengths", "128,512", "Tokens per row, comma-separated.")
_TOKENS = flags.DEFINE_integer("tokens", 16_384, "batch × length per step.")
_IMPLEMENTATIONS = flags.DEFINE_list(
  "implementations", "cudnn,xla", "The fused attention's implementations."
)
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"], "Compute dtype.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls of each step (the median counts).")
_PEAK_TFLOPS = flags.DEFINE_float(
  "peak_tflops", None, "The device's dense peak; else PEAK_TFLOPS's entry."
)
_OUT = flags.DEFINE_string("out", os.environ.get("OUT"), "Directory for the results.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny, length 32, xla, 2 repeats.")
_BUDGET_S = flags.DEFINE_float("budget_s", 420, "Compile no new case after this many seconds.")

# Dense bfloat16 peaks (TFLOP/s, no sparsity) by a substring of `device_kind`; first match wins.
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0))
MIB = 2**20
HEADER = [
  *("model", "length", "batch", "attention", "compile s", "step ms", "tokens/s"),
  *("TFLOP/s", "MFU", "÷ bert step time", "temp MiB", "scores MiB"),
]


def peak_tflops(device_kind: str) -> float | None:
  return next((peak for name, peak in PEAK_TFLOPS if name in device_kind), None)


def markdown(rows: list[dict], header: str) -> str:
  cells = []
  for r in rows:
    case = [r["model"], r["length"], r["batch"], r["implementation"]]
    if "error" in r:
      failed = [f"failed: {r['error'][:100]}"]
      cells.append(case + failed + [""] * (len(HEADER) - len(case) - 1))
      continue
    mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
    ratio = f"{r['vs_bert']:.2f}×" if r.get("vs_bert") else ""
    cells.append(
      [
        *case,
        *(f"{r['compile_s']:.1f}", f"{r['step_ms']:.2f}", f"{r['tokens_per_s']:.0f}"),
        *(f"{r['tflops']:.3g}", mfu, ratio, f"{r['temp_mib']:.0f}", f"{r['scores_mib']:.1f}"),
      ]
    )
  return header + "\n" + table(HEADER, cells, align="lrrl" + "r" * 8)


def main(argv):
  common.start(argv)
  size, lengths, tokens = _SIZE.value, [int(n) for n in _LENGTHS.value], _TOKENS.value
  implementations, repeats = _IMPLEMENTATIONS.value, _REPEATS.value
  if _SMOKE.value:
    size, lengths, tokens, implementations, repeats = "tiny", [32], 128, ["xla"], 2

  started = time.perf_counter()
  device = jax.devices()[0]
  peak = _PEAK_TFLOPS.value or peak_tflops(device.device_kind)
  header = (
    f"# {common.machine()}  {_DTYPE.value} compute, float32 parameters, {tokens} tokens per "
    f"step, median of {repeats}, peak {peak} TFLOP/s"
  )
  print(header, flush=True)
  mesh = make_mesh(1, 1, 1, devices=[device])
  rows = []
  for length in lengths:
    batch_size = max(1, tokens // length)
    batch = jax.device_put(steps.random_batch(batch_size, length))
    runners, cases = {}, {}
    for model in ("bert", "mobius_bert"):
      preset = f"{model}-{size}"
      num_heads = ModelConfig.preset(preset).num_heads
      scores_mib = batch_size * num_heads * length**2 * 2 / MIB  # one bfloat16 [B, N, L, L]
      for implementation in implementations:
        row = dict(model=preset, length=length, batch=batch_size, implementation=implementation)
        row["scores_mib"] = scores_mib
        if time.perf_counter() - started > _BUDGET_S.value:
          rows.append({**row, "error": f"skipped: past --budget_s {_BUDGET_S.value:.0f}"})
          continue
        try:
          step, state, _ = steps.our_step(
            preset,
            length,
            mesh,
            dtype=_DTYPE.value,
            attention_implementation=implementation,
            attention_dropout=0.0,
          )
          flops = steps.model_flops(preset, state.params, batch_size, length)
          runner, row["compile_s"] = steps.compile_runner(step, state, batch, mesh)
          row["temp_mib"] = runner.compiled.memory_analysis().temp_size_in_bytes / MIB
        except Exception as error:  # one failed case must not end the run
          rows.append({**row, "error": f"{type(error).__name__}: {error}"})
          print(f"# {preset} {length} {implementation}: {rows[-1]['error']}", flush=True)
          continue
        runners[(preset, implementation)], cases[(preset, implementation)] = runner, (row, flops)
    t = common.time_interleaved(runners, repeats)
    for key, (row, flops) in cases.items():
      tflops = flops / t[key] / 1e12
      bert = t.get((f"bert-{size}", key[1]))
      row.update(
        step_ms=1e3 * t[key],
        tokens_per_s=batch_size * length / t[key],
        tflops=tflops,
        mfu=tflops / peak if peak else None,
        vs_bert=t[key] / bert if bert else None,
        loss=float(runners[key].losses[-1]),
      )
      rows.append(row)
      print(json.dumps(row), flush=True)
  summary = markdown(rows, header)
  print(summary)
  print(f"# {time.perf_counter() - started:.0f} s in all")
  if _OUT.value:
    out = pathlib.Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(
      json.dumps({"device": device.device_kind, "peak_tflops": peak, "rows": rows}, indent=2)
    )
    (out / "gpu.md").write_text(summary + "\n")


if __name__ == "__main__":
  app.run(main)
