"""The paper's analysis of a trained model, restored from its workdir: figures, JSON, Markdown.

`analyze(restore_run(workdir), out)` writes into `out`:
  report.json    map types per layer and head, determinants, fixed points, attention statistics
  report.md      the same as tables
  maps.npz       every learned map's coefficients a, b, c, d, its type code and fixed points
  type_shares.png, map_images.png (Möbius layers only), attention.png (one sentence)

`python -m train.analyze` runs it on a workdir; the studies call `analysis_of`, which reads a
report back where it is of the run's last checkpoint.
"""

from __future__ import annotations

import pathlib

import numpy as np

import mobius_jax.analysis as mja
from mobius_jax import MOBIUS_TYPES, classify, fixed_points
from train import files, markdown
from train.core import checkpointing, experiment
from train.core.experiment import Run
from train.data import input_pipeline, tasks
from train.data.tokenizer import PAD_ID

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
    "model": experiment.model_name(run.config),
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
  weights = mja.model_attention_weights(params, config, attention_mask=mask, **inputs)
  report["attention"] = mja.attention_statistics(weights, mask, config, near_zero=near_zero)
  report["attention"]["examples"] = len(mask)

  encoding = run.tokenizer.encode(sentence)
  ids = np.array([encoding.ids[: config.max_position_embeddings]], np.int32)
  sentence_weights = mja.model_attention_weights(params, config, ids)
  figures["attention"] = _figure(
    mja.plot_attention,
    [w[0] for w in sentence_weights],
    encoding.tokens[: ids.shape[1]],
    out / "attention.png",
    kinds=mja.head_kinds(config),
  )
  report["figures"] = {name: path.name for name, path in figures.items()}
  files.write_json(out / "report.json", report)
  files.write_text(out / "report.md", report_markdown(report))
  return report


def analysis_of(workdir: pathlib.Path) -> dict:
  """The report of `analyze` on the run in WORKDIR/finetune, written into WORKDIR/analysis, or
  read back from there where it was written after the run's last checkpoint (a study called
  again reads its finished runs without restoring them)."""
  saved = workdir / "analysis" / "report.json"
  steps = checkpointing.saved_steps(workdir / "finetune" / "checkpoints")
  if saved.exists() and steps:
    checkpoint = workdir / "finetune" / "checkpoints" / str(steps[-1])
    report = files.read_json(saved, "analysis report")
    if report.get("step") == steps[-1] and saved.stat().st_mtime >= checkpoint.stat().st_mtime:
      return report
  return analyze(experiment.restore_run(workdir / "finetune"), workdir / "analysis")


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


def report_markdown(report: dict) -> str:
  """report.md: the map types, determinants and attention statistics as tables."""
  lines = [
    f"# Analysis of {report['model']} ({report['mode']}, step {report['step']})",
    "",
    f"Layers: `{report['layer_kinds']}` (M Möbius, V vanilla).",
    "",
    *_map_tables(report["maps"]),
    *_attention_tables(report["attention"]),
    "",
    *(f"![{name}]({file})" for name, file in report["figures"].items()),
    "",
  ]
  return "\n".join(lines)


def _map_tables(maps: dict) -> list[str]:
  if not maps["layers"]:
    return ["The model has no Möbius heads: no maps to analyse."]
  types = [t for t in MOBIUS_TYPES if maps["total"]["counts"][t]]
  rows = []
  for layer in maps["layers"]:
    for head, entry in [("all", layer), *((str(h["head"]), h) for h in layer["heads"])]:
      shares = [f"{entry['shares'][t]:.1%}" for t in types]
      rows.append((layer["layer"], head, sum(entry["counts"].values()), *shares))
  determinants = []
  for layer in maps["layers"]:
    d, f = layer["determinant"], layer["fixed_points"]
    determinants.append(
      (
        layer["layer"],
        *(f"{d[k]:.3f}" for k in ("abs_mean", "abs_median", "abs_min", "abs_max")),
        f"{d['near_one_share']:.1%}",
        f"{f['unit_disk_share']:.1%}",
      )
    )
  header = ("layer", "mean", "median", "min", "max", "near 1", "fixed points in unit disk")
  return [
    f"## Learned Möbius maps (classify tol {maps['tol']:g})",
    "",
    markdown.table(("layer", "head", "maps", *types), rows, align="llr" + "r" * len(types)),
    "",
    f"Determinants |ad − bc| of the learned coefficients (near 1: within {maps['det_tol']:g}):",
    "",
    markdown.table(header, determinants),
  ]


def _attention_tables(attention: dict) -> list[str]:
  def numbers(s):
    return f"{s['entropy']:.3f}", f"{s['normalized_entropy']:.3f}", f"{s['near_zero_share']:.1%}"

  kinds = [(kind, s["heads"], *numbers(s)) for kind, s in attention["by_kind"].items()]
  heads = [(h["layer"], h["head"], h["kind"], *numbers(h)) for h in attention["heads"]]
  header = ("heads", "count", "entropy (nats)", "normalised entropy", "near-zero share")
  return [
    "",
    f"## Attention on {attention['examples']} validation examples",
    "",
    f"Near zero: a weight below {attention['near_zero']:g} × the uniform weight 1/n.",
    "",
    markdown.table(header, kinds),
    "",
    markdown.table(
      ("layer", "head", "kind", "entropy", "normalised", "near zero"), heads, align="lllrrr"
    ),
  ]
