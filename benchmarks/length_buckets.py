"""Fine-tuning with batches cut to length buckets against batches padded to `max_len`.

GLUE's sentences are short next to its `max_len` of 256 (MosaicBERT's), so a batch padded to 256
computes mostly padding. With `config.length_buckets` each batch is cut to the shortest of a few
lengths (32, 64, 128, 256) that holds its longest row (`train.input_pipeline.bucket_length`).
Here the same global batches of real sentences go through our fine-tuning train step both ways:
the Rotten Tomatoes sentences of the offline `polarity` task (the sentences SST-2 was built
from), tokenised by the main job's WordPiece (trained on WikiText-2, 8,192 tokens), for the
sentence-pair tasks a pair of them, as long as an MNLI premise and hypothesis together. Each
bucket shape is compiled before timing; the time is the whole sequence of batches.

  python benchmarks/length_buckets.py                       # bert-small, 24 batches of 32
  python benchmarks/length_buckets.py --model bert-tiny --batches 4 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import time

import common  # first: it puts the repository root on sys.path
import flax.linen as nn
import jax
import numpy as np

from configs import default as default_config
from mobius_jax.models import ModelConfig, SequenceClassifier
from train import datasets, input_pipeline, objectives, optim, tasks, tokenizer
from train import state as train_state


def sentence_rows(max_len: int, pairs: bool) -> dict[str, np.ndarray]:
  """The polarity task's training sentences (or pairs of them), padded to `max_len`."""
  task = tasks.get_task("polarity")
  corpus = tasks.get_corpus("wikitext2")
  tok = tokenizer.load_tokenizer(corpus=corpus, vocab_size=8192)
  rows = input_pipeline.finetuning_arrays(task, task.train_split, tok, max_len)
  if not pairs:
    return rows
  source = datasets.data_source(task.dataset, task.train_split, None, True)
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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="bert-small")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--batches", type=int, default=24)
  parser.add_argument("--max_len", type=int, default=256)
  parser.add_argument("--buckets", type=int, nargs="+", default=[32, 64, 128, 256])
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)

  config = default_config.finetune_config()
  config.num_train_steps = 10_000
  task = tasks.get_task("polarity")
  model = SequenceClassifier(ModelConfig.preset(args.model, vocab_size=8192), task.num_labels)
  objective = objectives.ClassificationObjective(model, task)
  init = train_state.init_fn(model, optim.make_optimizer(config), args.max_len)
  step = jax.jit(functools.partial(train_state.train_step, objective=objective), donate_argnums=0)
  print(
    f"# {common.machine()}  {args.model}, float32, {args.batches} batches of {args.batch}, "
    f"max_len {args.max_len}, buckets {args.buckets}, best of {args.repeats}"
  )
  print(
    common.table(
      ["rows", "mean tokens", "padded s", "bucketed s", "speed-up", "bucket lengths used"]
    )
  )
  for pairs in (False, True):
    rows = sentence_rows(args.max_len, pairs)
    lengths = input_pipeline.token_lengths(rows)
    timings, used = {}, []
    for buckets in ((), tuple(args.buckets)):
      dataset = input_pipeline.training_dataset(rows, args.batch, seed=0, buckets=buckets)
      batches = [jax.device_put(dataset[i]) for i in range(args.batches)]
      state = nn.meta.unbox(init(jax.random.key(0)))
      for shape in {b["input_ids"].shape: b for b in batches}.values():  # compile each shape
        state, _ = step(state, shape, jax.random.key(1))
      best = float("inf")
      for _ in range(args.repeats):
        start = time.perf_counter()
        for i, batch in enumerate(batches):
          state, metrics = step(state, batch, jax.random.key(i))
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - start)
      timings[buckets] = best
      if buckets:
        used = sorted({b["input_ids"].shape[1] for b in batches})
    padded, bucketed = timings[()], timings[tuple(args.buckets)]
    print(
      f"| {'pairs' if pairs else 'sentences'} | {lengths.mean():.1f} | {padded:.2f} "
      f"| {bucketed:.2f} | {padded / bucketed:.2f}× | {used} |",
      flush=True,
    )


if __name__ == "__main__":
  main()
