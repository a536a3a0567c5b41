"""The paper's analysis of a trained model, from its workdir: figures, JSON and Markdown.

  python -m train.analyze --workdir runs/reproduce/seed0/mobius_bert-tiny/finetune
  python -m train.analyze --workdir DIR --out DIR --sentence "A film to remember." --tol 1e-2

Writes into --out (default WORKDIR/analysis):
  report.json    map types per layer and head, determinants, fixed points, attention statistics
  report.md      the same as tables
  maps.npz       every learned map's coefficients a, b, c, d, its type code and fixed points
  type_shares.png, map_images.png (Möbius layers only), attention.png (the --sentence)

`analyze(restore_run(workdir), out)` is the same from Python (notebooks use it). The command's
flags are defined when it runs (`define_flags`), not on import, so that other commands with a
`--workdir` of their own can import this module.
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app, flags, logging

import mobius_jax.analysis as mja
from mobius_jax import MOBIUS_TYPES, classify, fixed_points
from train import files, input_pipeline, tasks
from train.experiment import Run, restore_run
from train.tokenizer import PAD_ID

SENTENCE = "The film is a charming and often moving story of a family that learns what to forget."


def validation_inputs(run: Run, count: int) -> dict[str, np.ndarray]:
  """The first `count` rows of the run's validation data: `input_ids`, `token_type_ids`."""
  config, tokenizer = run.config, run.tokenizer
  if config.mode == "pretrain":
    corpus = tasks.get_corpus(config.corpus)
    if corpus.offline:
      ids = input_pipeline.pretraining_rows(
        corpus, corpus.eval_split, tokenizer, config.max_len, config.packing, config.data_dir
      )[:count]
    else:
      stream = input_pipeline.streaming_documents(corpus, corpus.eval_split, config.data_dir)
      texts = [stream[i] for i in range(min(count, len(stream)))]
      ids = input_pipeline.document_rows(tokenizer, texts, config.max_len)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}
  task = tasks.get_task(config.task)
  arrays = input_pipeline.finetuning_arrays(
    task, task.eval_splits[0], tokenizer, config.max_len, config.data_dir
  )
  return {key: arrays[key][:count] for key in ("input_ids", "token_type_ids")}


def analyze(
  run: Run,
  out: str | pathlib.Path,
  *,
  sentence: str = SENTENCE,
  num_examples: int = 64,
  tol: float = 1e-3,
  det_tol: float = 0.1,
  near_zero: float = 0.1,
) -> dict:
  """Writes the figures, report.json, report.md and maps.npz of `run` into `out`.

  `sentence` is drawn in attention.png; the attention statistics use the first `num_examples`
  validation rows of the run's data; `tol`, `det_tol` and `near_zero` are as in
  `mobius_jax.analysis.map_report` and `attention_statistics`.

  Returns:
    The report (as in report.json).
  """
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  params, config = run.params, run.model_config
  report = {
    "model": run.config.model,
    "mode": run.config.mode,
    "step": run.step,
    "layer_kinds": config.layer_kinds,
    "maps": mja.map_report(params, config, tol=tol, det_tol=det_tol),
  }
  figures = {}
  maps = mja.mobius_maps(params, config)
  if maps:
    figures["type_shares"] = _figure(mja.plot_type_shares, report["maps"], out / "type_shares.png")
    chosen = mja.representative_maps(maps, tol=tol)
    figures["map_images"] = _figure(mja.plot_map_images, chosen, out / "map_images.png")
    with files.atomic_path(out / "maps.npz") as temporary:
      np.savez(temporary, **_map_arrays(maps, tol))

  inputs = validation_inputs(run, num_examples)
  mask = inputs["input_ids"] != PAD_ID
  weights = mja.attention_weights(params, config, attention_mask=mask, **inputs)
  report["attention"] = mja.attention_statistics(weights, mask, config, near_zero=near_zero)
  report["attention"]["examples"] = len(mask)

  encoding = run.tokenizer.encode(sentence)
  ids = np.array([encoding.ids[: config.max_position_embeddings]], np.int32)
  sentence_weights = mja.attention_weights(params, config, ids)
  figures["attention"] = _figure(
    mja.plot_attention,
    [w[0] for w in sentence_weights],
    encoding.tokens[: ids.shape[1]],
    out / "attention.png",
    kinds=mja.head_kinds(config),
  )
  report["figures"] = {name: path.name for name, path in figures.items()}
  files.write_json(out / "report.json", report)
  files.write_text(out / "report.md", markdown(report))
  return report


def _figure(plot, *args, **kwargs) -> pathlib.Path:
  """`plot(*args, path, **kwargs)` written atomically to `path` (the last positional)."""
  *args, path = args
  with files.atomic_path(path) as temporary:
    plot(*args, temporary, **kwargs)
  return path


def _map_arrays(maps: dict, tol: float) -> dict[str, np.ndarray]:
  """maps.npz's arrays: per Möbius layer i, `layer{i}_{a,b,c,d,type,fixed1,fixed2}` `[M, D]`."""
  arrays = {}
  for layer, m in maps.items():
    arrays.update({f"layer{layer}_{name}": x for name, x in zip("abcd", m, strict=True)})
    arrays[f"layer{layer}_type"] = np.asarray(classify(m, tol=tol))
    for i, point in enumerate(fixed_points(m), start=1):
      arrays[f"layer{layer}_fixed{i}"] = np.asarray(point)
  return arrays


def markdown(report: dict) -> str:
  """report.md: the map types, determinants and attention statistics as tables."""
  maps, attention = report["maps"], report["attention"]
  lines = [
    f"# Analysis of {report['model']} ({report['mode']}, step {report['step']})",
    "",
    f"Layers: `{report['layer_kinds']}` (M Möbius, V vanilla).",
    "",
  ]
  if maps["layers"]:
    types = [t for t in MOBIUS_TYPES if maps["total"]["counts"][t]]
    lines += [
      f"## Learned Möbius maps (classify tol {maps['tol']:g})",
      "",
      "| layer | head | maps | " + " | ".join(types) + " |",
      "|---|---|---:|" + "---:|" * len(types),
    ]
    for layer in maps["layers"]:
      rows = [("all", layer), *((str(h["head"]), h) for h in layer["heads"])]
      for head, entry in rows:
        n = sum(entry["counts"].values())
        shares = " | ".join(f"{entry['shares'][t]:.1%}" for t in types)
        lines.append(f"| {layer['layer']} | {head} | {n} | {shares} |")
    lines += [
      "",
      f"Determinants |ad − bc| of the learned coefficients (near 1: within {maps['det_tol']:g}):",
      "",
      "| layer | mean | median | min | max | near 1 | fixed points in unit disk |",
      "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for layer in maps["layers"]:
      d, f = layer["determinant"], layer["fixed_points"]
      lines.append(
        f"| {layer['layer']} | {d['abs_mean']:.3f} | {d['abs_median']:.3f} | {d['abs_min']:.3f} "
        f"| {d['abs_max']:.3f} | {d['near_one_share']:.1%} | {f['unit_disk_share']:.1%} |"
      )
  else:
    lines.append("The model has no Möbius heads: no maps to analyse.")
  lines += [
    "",
    f"## Attention on {attention['examples']} validation examples",
    "",
    f"Near zero: a weight below {attention['near_zero']:g} × the uniform weight 1/n.",
    "",
    "| heads | count | entropy (nats) | normalised entropy | near-zero share |",
    "|---|---:|---:|---:|---:|",
  ]
  for kind, s in attention["by_kind"].items():
    lines.append(
      f"| {kind} | {s['heads']} | {s['entropy']:.3f} | {s['normalized_entropy']:.3f} "
      f"| {s['near_zero_share']:.1%} |"
    )
  lines += [
    "",
    "| layer | head | kind | entropy | normalised | near zero |",
    "|---|---|---|---:|---:|---:|",
  ]
  for h in attention["heads"]:
    lines.append(
      f"| {h['layer']} | {h['head']} | {h['kind']} | {h['entropy']:.3f} "
      f"| {h['normalized_entropy']:.3f} | {h['near_zero_share']:.1%} |"
    )
  lines += ["", *(f"![{name}]({file})" for name, file in report["figures"].items()), ""]
  return "\n".join(lines)


def define_flags() -> None:
  """The command's flags (`python -m train.analyze --help` lists them)."""
  flags.DEFINE_string("workdir", None, "A pretraining or fine-tuning run's workdir.", required=True)
  flags.DEFINE_string("out", None, "Where to write the results; default WORKDIR/analysis.")
  flags.DEFINE_integer("step", None, "The checkpoint step; default the latest.")
  flags.DEFINE_string("sentence", SENTENCE, "The sentence of the attention heat-maps.")
  flags.DEFINE_integer("num_examples", 64, "Validation examples for the attention statistics.")
  flags.DEFINE_float("tol", 1e-3, "Tolerance of the map classification (classify's tol).")
  flags.DEFINE_float("det_tol", 0.1, "|det| within this of 1 counts as near 1.")
  flags.DEFINE_float(
    "near_zero", 0.1, "An attention weight below this fraction of uniform counts as near zero."
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  args = flags.FLAGS
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "analysis")
  report = analyze(
    restore_run(args.workdir, args.step),
    out,
    sentence=args.sentence,
    num_examples=args.num_examples,
    tol=args.tol,
    det_tol=args.det_tol,
    near_zero=args.near_zero,
  )
  print(f"Wrote {', '.join(report['figures'].values())}, report.json, report.md to {out}")
  print((out / "report.md").read_text().split("\n## Attention")[0])


if __name__ == "__main__":
  define_flags()
  app.run(main)
