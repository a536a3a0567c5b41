"""The input pipelines' tokens per second per CPU core, against what a TPU v4 host consumes.

A pod host feeds its chips from its own CPU cores: one JAX process per host reads, tokenises and
batches its share of every global batch. This measures, on this machine, the pipelines of
`train.data.input_pipeline` as the training loop runs them (a grain dataset read through
`grain.ReadOptions` threads):

- **C4 streaming** (as `pretraining_data` reads C4: each global batch's documents tokenised
  together when read, `document_rows`: each cut after enough characters for a row, then
  `encode_batch`, whose Rust threads release the GIL): C4 is not reachable offline, so
  WikiText-2's training paragraphs joined `--paragraphs` at a time stand in for its documents
  (the script prints their mean length), read from an in-memory grain source; WordPiece with
  BERT's vocabulary size (30,522) trained on WikiText-2.
- **C4 streaming, one document at a time**: the pipeline before `document_rows`: each document
  tokenised whole with `encode` in grain's reader threads, then truncated; and the same with the
  cut first. `encode` holds the GIL, so more reader threads add no throughput.
- **WikiText-2 in memory** (`pretraining_rows`: the corpus tokenised once with `encode_batch`
  and packed), then batches read as index gathers.
- **fine-tuning** (`finetuning_arrays` on the polarity task's training sentences, then
  `training_dataset` batches cut to length buckets).

Each figure is row tokens (`B × L`: what the chips compute on) per second of wall time and per
second of this process's CPU time (all threads: `time.process_time`), the per-core rate. The
consumption of a TPU v4 host (4 chips, 275 bf16 TFLOP/s each, at 50 % MFU) comes from XLA's
FLOP count of our bf16 train step of `bert-base` and `mobius_bert-base` at 128 tokens per row
(`steps.compile_step`, one device), divided by the row tokens of the step.

  python benchmarks/input_pipeline.py                 # about 3 minutes
  python benchmarks/input_pipeline.py --batches 4 --presets bert-tiny   # a smoke run
"""

from __future__ import annotations

import threading
import time

import common  # first: it puts the repository root on sys.path
import grain
import jax
import numpy as np
import steps
from absl import app, flags

from mobius_jax.sharding import make_mesh
from train.data import input_pipeline, offline, tasks, tokenizer
from train.markdown import table

_BATCH = flags.DEFINE_integer("batch", 256, "Rows per batch.")
_BATCHES = flags.DEFINE_integer("batches", 40, "Batches read per measurement.")
_MAX_LEN = flags.DEFINE_integer("max_len", 128, "Tokens per row.")
_PARAGRAPHS = flags.DEFINE_integer("paragraphs", 4, "WikiText-2 paragraphs per stand-in doc.")
_THREADS = flags.DEFINE_list("threads", "1,2", "grain reader threads, comma-separated.")
_PRESETS = flags.DEFINE_list(
  "presets", "bert-base,mobius_bert-base", "Models whose step a TPU v4 host must feed."
)

HOST_CHIPS, CHIP_PEAK_TFLOPS, MFU = 4, 275.0, 0.5  # TPU v4 (pod.SYSTEMS names the source)


def documents(paragraphs: int) -> list[str]:
  """WikiText-2's training paragraphs, joined `paragraphs` at a time."""
  corpus = tasks.get_corpus("wikitext2")
  source = offline.data_source(corpus.dataset, corpus.train_split, None, True)
  texts = list(corpus.texts(source))
  return [" ".join(texts[i : i + paragraphs]) for i in range(0, len(texts), paragraphs)]


def one_at_a_time(texts: list[str], tok, max_len: int, cut: bool) -> grain.MapDataset:
  """The pipeline before `input_pipeline.document_rows`: a grain dataset of rows, each
  document tokenised by itself when read (whole, or cut as `document_rows` cuts it)."""
  cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
  limit = input_pipeline.CHARS_PER_TOKEN * (max_len - 2)

  def encode(text):
    end = text.find(" ", limit) if cut else -1
    tokens = tok.encode(text if end == -1 else text[:end], add_special_tokens=False).ids
    return input_pipeline.truncate([tokens], max_len, cls_id, sep_id)[0]

  return grain.MapDataset.source(texts).map(encode)


def measure(dataset: grain.MapDataset, batches: int, threads: int) -> tuple[float, float, int]:
  """(wall seconds, CPU seconds, row tokens) of reading `batches` batches with `threads`."""
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
  iterator = iter(dataset.to_iter_dataset(options))
  next(iterator)  # start the threads
  wall, cpu, tokens = time.perf_counter(), time.process_time(), 0
  for _ in range(batches):
    tokens += next(iterator)["input_ids"].size
  return time.perf_counter() - wall, time.process_time() - cpu, tokens


def python_pace_during(call) -> float:
  """How much of its pace a pure-Python thread keeps while `call()` runs, against a same-length
  span after it: ≈ 0 when `call` holds the GIL, well above 0 when it releases it."""
  count, stop = [0], [False]

  def spin():
    while not stop[0]:
      count[0] += 1

  thread = threading.Thread(target=spin)
  thread.start()
  time.sleep(0.2)
  before, start = count[0], time.perf_counter()
  call()
  span, during = time.perf_counter() - start, count[0] - before
  time.sleep(span)
  after = count[0] - before - during
  stop[0] = True
  thread.join()
  return during / max(after, 1)


def stack(rows: list[np.ndarray]) -> dict[str, np.ndarray]:
  return {"input_ids": np.stack(rows)}


def once(build) -> tuple[float, float, object]:
  """(wall seconds, CPU seconds, result) of `build()`: a one-off tokenisation."""
  wall, cpu = time.perf_counter(), time.process_time()
  result = build()
  return time.perf_counter() - wall, time.process_time() - cpu, result


def row(name: str, threads: str, wall: float, cpu: float, tokens: int, need: dict) -> list[str]:
  """A row of the table, printed at once as a progress line."""
  per_core = tokens / cpu
  cells = [name, threads, f"{tokens / wall:,.0f}", f"{per_core:,.0f}"]
  cells += [f"{rate / per_core:.1f}" for rate in need.values()]
  common.progress(cells)
  return cells


def main(argv):
  common.start(argv)
  batch_size, count, max_len = _BATCH.value, _BATCHES.value, _MAX_LEN.value
  print(f"# {common.machine()}")

  need = {}  # row tokens / s one TPU v4 host consumes
  for preset in _PRESETS.value:
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    step = steps.compile_step(preset, mesh, 8, 128, "bfloat16")
    per_token = step["flops"] / (8 * 128)
    need[preset] = HOST_CHIPS * CHIP_PEAK_TFLOPS * 1e12 * MFU / per_token
    print(
      f"# {preset}: {per_token / 1e6:.1f} MFLOP per token (XLA) → one TPU v4 host at "
      f"{MFU:.0%} MFU consumes {need[preset]:,.0f} tokens/s"
    )

  corpus = tasks.get_corpus("wikitext2")
  bert_vocab = tokenizer.load_tokenizer(corpus=corpus, vocab_size=30522)
  texts = documents(_PARAGRAPHS.value)
  print(f"# {len(texts)} stand-in documents of {np.mean([len(t) for t in texts]):,.0f} chars")
  # One long call each, so that the GIL's switching between calls does not blur the answer.
  sample = texts[:512]
  for name, call in (
    ("encode", lambda: bert_vocab.encode(" ".join(sample))),
    ("encode_batch", lambda: bert_vocab.encode_batch(sample)),
  ):
    print(
      f"# during one {name} call a Python thread keeps {python_pace_during(call):.0%} of its pace"
    )
  header = ["pipeline", "threads", "tokens/s", "tokens/s per core"]
  header += [f"cores for a v4 host, {p}" for p in need]
  rows = []
  for cut in (False, True):
    docs = one_at_a_time(texts, bert_vocab, max_len, cut)
    batches = input_pipeline.training_dataset(docs, batch_size, seed=0, encode=stack)
    name = "C4 streaming, one document at a time" + (", cut first" if cut else ", whole")
    for threads in _THREADS.value:
      rows.append(row(name, threads, *measure(batches, count, int(threads)), need))
  batches = input_pipeline.training_dataset(
    grain.MapDataset.source(texts),
    batch_size,
    seed=0,
    encode=lambda docs: {"input_ids": input_pipeline.document_rows(bert_vocab, docs, max_len)},
  )
  rows.append(row("C4 streaming", "1 + Rust", *measure(batches, count, 1), need))

  main_vocab = tokenizer.load_tokenizer(corpus=corpus, vocab_size=8192)
  wall, cpu, packed = once(
    lambda: input_pipeline.pretraining_rows(corpus, corpus.train_split, main_vocab, max_len, True)
  )
  rows.append(row("WikiText-2: tokenise once and pack", "Rust", wall, cpu, packed.size, need))
  batches = input_pipeline.training_dataset({"input_ids": packed}, batch_size, seed=0)
  rows.append(row("WikiText-2: batches of packed rows", "1", *measure(batches, count, 1), need))

  task = tasks.get_task("polarity")
  wall, cpu, arrays = once(
    lambda: input_pipeline.finetuning_arrays(task, task.train_split, main_vocab, max_len)
  )
  rows.append(row("polarity: tokenise once", "Rust", wall, cpu, arrays["input_ids"].size, need))
  batches = input_pipeline.training_dataset(arrays, batch_size, seed=0, buckets=(32, 64))
  rows.append(row("polarity: bucketed batches", "1", *measure(batches, count, 1), need))
  print("\n" + table(header, rows, align="ll" + "r" * (len(header) - 2)))


if __name__ == "__main__":
  app.run(main)
