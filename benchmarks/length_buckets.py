"""Fine-tuning with batches cut to length buckets against batches padded to `max_len`.

GLUE's sentences are short next to its `max_len` of 256 (MosaicBERT's), so a batch padded to 256
computes mostly padding. With `config.length_buckets` each batch is cut to the shortest of a few
lengths (32, 64, 128, 256) that holds its longest row (`train.data.input_pipeline.bucket_length`).
Here the same global batches of real sentences go through our fine-tuning train step both ways:
the Rotten Tomatoes sentences of the offline `polarity` task (the sentences SST-2 was built
from), tokenised by the main job's WordPiece (trained on WikiText-2, 8,192 tokens), for the
sentence-pair tasks a pair of them, as long as an MNLI premise and hypothesis together. Each
bucket shape is compiled before timing; the time is the whole sequence of batches.

  python benchmarks/length_buckets.py                       # bert-small, 24 batches of 32
  python benchmarks/length_buckets.py --model bert-tiny --batches 4 --repeats 1 --buckets 32,64
"""

from __future__ import annotations

import functools
import time

import common  # first: it puts the repository root on sys.path
import flax.linen as nn
import jax
import numpy as np
from absl import app, flags

from configs import default as default_config
from mobius_jax.models import ModelConfig, SequenceClassifier
from train.core import objectives, optim
from train.core import state as train_state
from train.data import input_pipeline, offline, tasks, tokenizer
from train.markdown import table

_MODEL = flags.DEFINE_string("model", "bert-small", "The model preset.")
_BATCH = flags.DEFINE_integer("batch", 32, "Rows per batch.")
_BATCHES = flags.DEFINE_integer("batches", 24, "Batches per timed pass.")
_MAX_LEN = flags.DEFINE_integer("max_len", 256, "The padded length.")
_BUCKETS = flags.DEFINE_list("buckets", "32,64,128,256", "The bucket lengths, comma-separated.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes of each way (the best counts).")


def sentence_rows(max_len: int, pairs: bool) -> dict[str, np.ndarray]:
  """The polarity task's training sentences (or pairs of them), padded to `max_len`."""
  task = tasks.get_task("polarity")
  corpus = tasks.get_corpus("wikitext2")
  tok = tokenizer.load_tokenizer(corpus=corpus, vocab_size=8192)
  rows = input_pipeline.finetuning_arrays(task, task.train_split, tok, max_len)
  if not pairs:
    return rows
  source = offline.data_source(task.dataset, task.train_split, None, True)
  texts = [tasks.as_text(source[i]["sentence"]) for i in range(len(source))]
  shifted = texts[1:] + texts[:1]
  encoder = tokenizer.Tokenizer.from_str(tok.to_str())
  encoder.enable_truncation(max_len)
  encoder.enable_padding(pad_id=tokenizer.PAD_ID, length=max_len)
  encodings = encoder.encode_batch(list(zip(texts, shifted, strict=True)))
  return {
    "input_ids": np.array([e.ids for e in encodings], np.int32),
    "token_type_ids": np.array([e.type_ids for e in encodings], np.int32),
    "label": rows["label"],
  }


def main(argv):
  common.start(argv)
  preset, batch_size, count, max_len = _MODEL.value, _BATCH.value, _BATCHES.value, _MAX_LEN.value
  bucket_lengths, repeats = [int(n) for n in _BUCKETS.value], _REPEATS.value
  config = default_config.finetune_config()
  config.num_train_steps = 10_000
  task = tasks.get_task("polarity")
  model = SequenceClassifier(ModelConfig.preset(preset, vocab_size=8192), task.num_labels)
  objective = objectives.ClassificationObjective(model, task)
  init = train_state.init_fn(model, optim.make_optimizer(config), max_len)
  step = jax.jit(functools.partial(train_state.train_step, objective=objective), donate_argnums=0)
  print(
    f"# {common.machine()}  {preset}, float32, {count} batches of {batch_size}, "
    f"max_len {max_len}, buckets {bucket_lengths}, best of {repeats}"
  )
  header = ["rows", "mean tokens", "padded s", "bucketed s", "speed-up", "bucket lengths used"]
  table_rows = []
  for pairs in (False, True):
    rows = sentence_rows(max_len, pairs)
    lengths = input_pipeline.token_lengths(rows)
    timings, used = {}, []
    for buckets in ((), tuple(bucket_lengths)):
      dataset = input_pipeline.training_dataset(rows, batch_size, seed=0, buckets=buckets)
      batches = [jax.device_put(dataset[i]) for i in range(count)]
      state = nn.meta.unbox(init(jax.random.key(0)))
      for shape in {b["input_ids"].shape: b for b in batches}.values():  # compile each shape
        state, _ = step(state, shape, jax.random.key(1))
      best = float("inf")
      for _ in range(repeats):
        start = time.perf_counter()
        for i, batch in enumerate(batches):
          state, metrics = step(state, batch, jax.random.key(i))
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - start)
      timings[buckets] = best
      if buckets:
        used = sorted({b["input_ids"].shape[1] for b in batches})
    padded, bucketed = timings[()], timings[tuple(bucket_lengths)]
    table_rows.append(
      [
        *("pairs" if pairs else "sentences", f"{lengths.mean():.1f}", f"{padded:.2f}"),
        *(f"{bucketed:.2f}", f"{padded / bucketed:.2f}×", str(used)),
      ]
    )
    common.progress(table_rows[-1])
  print(table(header, table_rows, align="lrrrrl"))


if __name__ == "__main__":
  app.run(main)
