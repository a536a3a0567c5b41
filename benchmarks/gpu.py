"""BERT-base and MöbiusBERT-base train steps on one GPU: step time, tokens/s and MFU.

One prepared run: for each length (128 and 512) the masked-LM train step of `train_step.py`
(ours: `train.state.train_step`, AdamW, the last layer and the logits at the masked positions)
of each model, in bfloat16 compute with float32 parameters, with the fused attention's
implementation `cudnn` and `xla` (`jax.nn.dot_product_attention`), compiled, then timed
interleaved. Attention dropout is 0 (the fused kernels take none); hidden dropout stays 0.1.
Memory is XLA's compiled temporary buffer size (`memory_analysis().temp_size_in_bytes`: the
gradients, activations and the attention's buffers), next to the size of one bfloat16
`[B, N, L, L]` score matrix per layer: the xla path materialises the scores and cuDNN's fused
kernel does not, so at one length their difference is the memory the fused kernel saves.

MFU = model FLOPs per second / the device's dense bfloat16 peak (`PEAK_TFLOPS`, or
`--peak-tflops`). Model FLOPs per step: 6 · N · tokens, N the parameters outside the embedding
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

import argparse
import json
import os
import pathlib
import time

import common
import jax
import train_step
from flax import traverse_util

from mobius_jax.models import ModelConfig
from mobius_jax.sharding import make_mesh

# Dense bfloat16 peaks (TFLOP/s, no sparsity) by a substring of `device_kind`; first match wins.
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0))
MIB = 2**20


def peak_tflops(device_kind: str) -> float | None:
  return next((peak for name, peak in PEAK_TFLOPS if name in device_kind), None)


def model_flops(preset: str, params, batch: int, length: int) -> float:
  """Model FLOPs of one train step (forward + backward); see the module docstring."""
  config = ModelConfig.preset(preset, vocab_size=train_step.VOCAB)
  tokens = batch * length
  masked = batch * train_step.masking(length)["max_predictions"]
  last = f"layer_{config.num_layers - 1}"

  def rows(path) -> int:  # how many tokens a weight is applied to
    at_masked = "mlm_head" in path or (last in path and not {"key", "value"} & set(path))
    return masked if at_masked else tokens

  flat = traverse_util.flatten_dict(params)
  dense = sum(v.size * rows(k) for k, v in flat.items() if "embeddings" not in k)
  queries = [tokens] * (config.num_layers - 1) + [masked]
  head_widths = [config.head_dim * (2 if kind == "M" else 1) for kind in config.layer_kinds]
  attention = sum(
    12 * q * length * config.num_heads * width
    for q, width in zip(queries, head_widths, strict=True)
  )
  decoder = 6 * config.hidden_size * config.vocab_size * masked
  return 6 * dense + decoder + attention


def markdown(rows: list[dict], header: str) -> str:
  lines = [
    header,
    common.table(
      [
        *("model", "length", "batch", "attention", "compile s", "step ms", "tokens/s"),
        *("TFLOP/s", "MFU", "÷ bert step time", "temp MiB", "scores MiB"),
      ]
    ),
  ]
  for r in rows:
    if "error" in r:
      failed = f"failed: {r['error'][:100]}"
      case = f"| {r['model']} | {r['length']} | {r['batch']} | {r['implementation']}"
      lines.append(f"{case} | {failed} |")
      continue
    mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
    ratio = f"{r['vs_bert']:.2f}×" if r.get("vs_bert") else ""
    lines.append(
      f"| {r['model']} | {r['length']} | {r['batch']} | {r['implementation']} "
      f"| {r['compile_s']:.1f} | {r['step_ms']:.2f} | {r['tokens_per_s']:.0f} "
      f"| {r['tflops']:.3g} | {mfu} | {ratio} | {r['temp_mib']:.0f} | {r['scores_mib']:.1f} |"
    )
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="base")
  parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
  parser.add_argument("--tokens", type=int, default=16_384, help="batch × length per step")
  parser.add_argument("--implementations", nargs="+", default=["cudnn", "xla"])
  parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--peak-tflops", type=float, help="the device's dense peak; else the table")
  parser.add_argument("--out", default=os.environ.get("OUT"), help="directory for the results")
  parser.add_argument("--smoke", action="store_true", help="tiny, length 32, xla, 2 repeats")
  parser.add_argument(
    "--budget-s", type=float, default=420, help="compile no new case after this many seconds"
  )
  args = parser.parse_args(argv)
  if args.smoke:
    args.size, args.lengths, args.tokens = "tiny", [32], 128
    args.implementations, args.repeats = ["xla"], 2

  started = time.perf_counter()
  device = jax.devices()[0]
  peak = args.peak_tflops or peak_tflops(device.device_kind)
  header = (
    f"# {common.machine()}  {args.dtype} compute, float32 parameters, {args.tokens} tokens per "
    f"step, median of {args.repeats}, peak {peak} TFLOP/s"
  )
  print(header, flush=True)
  mesh = make_mesh(1, 1, 1, devices=[device])
  rows = []
  for length in args.lengths:
    batch_size = max(1, args.tokens // length)
    batch = jax.device_put(train_step.random_batch(batch_size, length))
    runners, cases = {}, {}
    for model in ("bert", "mobius_bert"):
      preset = f"{model}-{args.size}"
      num_heads = ModelConfig.preset(preset).num_heads
      scores_mib = batch_size * num_heads * length**2 * 2 / MIB  # one bfloat16 [B, N, L, L]
      for implementation in args.implementations:
        row = dict(model=preset, length=length, batch=batch_size, implementation=implementation)
        row["scores_mib"] = scores_mib
        if time.perf_counter() - started > args.budget_s:
          rows.append({**row, "error": f"skipped: past --budget-s {args.budget_s:.0f}"})
          continue
        try:
          step, state, _ = train_step.our_step(
            preset,
            length,
            mesh,
            dtype=args.dtype,
            attention_implementation=implementation,
            attention_dropout=0.0,
          )
          flops = model_flops(preset, state.params, batch_size, length)
          runner, row["compile_s"] = train_step.compile_runner(step, state, batch, mesh)
          row["temp_mib"] = runner.compiled.memory_analysis().temp_size_in_bytes / MIB
        except Exception as error:  # one failed case must not end the run
          rows.append({**row, "error": f"{type(error).__name__}: {error}"})
          print(f"# {preset} {length} {implementation}: {rows[-1]['error']}", flush=True)
          continue
        runners[(preset, implementation)], cases[(preset, implementation)] = runner, (row, flops)
    t = common.time_interleaved(runners, args.repeats)
    for key, (row, flops) in cases.items():
      tflops = flops / t[key] / 1e12
      bert = t.get((f"bert-{args.size}", key[1]))
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
  if args.out:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(
      json.dumps({"device": device.device_kind, "peak_tflops": peak, "rows": rows}, indent=2)
    )
    (out / "gpu.md").write_text(summary + "\n")


if __name__ == "__main__":
  main()
