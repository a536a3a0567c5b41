"""Input pipeline: TFDS data sources → tokens (`train.tokenizer`) → numpy batches, via grain.

* Pretraining: the offline corpus is tokenised once in memory and packed (or truncated) into
  `[N, max_len]` rows; C4 streams: each document is tokenised when read and truncated. Masking
  happens on the device, in the train step (`train.objectives.mask_tokens`).
* Fine-tuning: single sentences or pairs, truncated and padded to `max_len`.
* Training batches come from a grain dataset with seeded, per-epoch shuffling; its iterator
  state (a small dict) is saved in checkpoints, so a resumed run sees the same batches.

Batches are dicts of numpy arrays: `input_ids` `[B, L]` int32 (pad = 0), `token_type_ids`
`[B, L]` int32, and for fine-tuning `label` `[B]` (int32, float32 for regression).
`pretraining_data` and `finetuning_data` put together what the training loop reads (`Data`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import grain
import jax
import ml_collections
import numpy as np

from train.datasets import data_source
from train.tasks import Corpus, Task, as_text
from train.tokenizer import PAD_ID, Tokenizer

# ------------------------------------------------------------------------------- pretraining


def pack(token_lists: Sequence[Sequence[int]], max_len: int, cls_id: int, sep_id: int):
  """Concatenates the token lists and cuts them into `[CLS] chunk [SEP]` rows of `max_len`.

  Returns:
    int32 `[N, max_len]`; the tail that does not fill a row is dropped.
  """
  body = max_len - 2
  flat = np.fromiter((t for tokens in token_lists for t in tokens), dtype=np.int32)
  rows = flat[: len(flat) // body * body].reshape(-1, body)
  column = lambda value: np.full((len(rows), 1), value, np.int32)  # noqa: E731
  return np.concatenate([column(cls_id), rows, column(sep_id)], axis=1)


def truncate(token_lists: Sequence[Sequence[int]], max_len: int, cls_id: int, sep_id: int):
  """One `[CLS] tokens[:max_len − 2] [SEP]` row per list, padded: int32 `[N, max_len]`."""
  rows = np.full((len(token_lists), max_len), PAD_ID, np.int32)
  for i, tokens in enumerate(token_lists):
    row = [cls_id, *tokens[: max_len - 2], sep_id]
    rows[i, : len(row)] = row
  return rows


def pretraining_rows(
  corpus: Corpus,
  split: str,
  tokenizer: Tokenizer,
  max_len: int,
  packing: bool,
  data_dir: str | None = None,
) -> np.ndarray:
  """The whole split of an in-memory corpus as int32 `[N, max_len]` rows.

  Cached per process by the tokenizer's content, so that runs in one process (the models of
  `train.reproduce`) tokenise the corpus once.
  """
  return _pretraining_rows(corpus, split, tokenizer.to_str(), max_len, packing, data_dir)


@functools.lru_cache(maxsize=8)
def _pretraining_rows(corpus, split, tokenizer_json, max_len, packing, data_dir):
  tokenizer = Tokenizer.from_str(tokenizer_json)
  source = data_source(corpus.dataset, split, data_dir, corpus.offline)
  texts = list(corpus.texts(source))
  token_lists = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
  cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
  return (pack if packing else truncate)(token_lists, max_len, cls_id, sep_id)


def streaming_pretraining_dataset(
  corpus: Corpus, split: str, tokenizer: Tokenizer, max_len: int, data_dir: str | None = None
) -> grain.MapDataset:
  """Documents of a large corpus (C4), each tokenised when read and truncated to `max_len`."""
  source = data_source(corpus.dataset, split, data_dir, corpus.offline)
  cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")

  def encode(record):
    tokens = tokenizer.encode(as_text(record[corpus.text_key]), add_special_tokens=False).ids
    return {"input_ids": truncate([tokens], max_len, cls_id, sep_id)[0]}

  return grain.MapDataset.source(source).map(encode)


# ------------------------------------------------------------------------------- fine-tuning


def finetuning_arrays(
  task: Task, split: str, tokenizer: Tokenizer, max_len: int, data_dir: str | None = None
) -> dict[str, np.ndarray]:
  """A task's split: `input_ids`, `token_type_ids` `[N, max_len]` and `label` `[N]`."""
  source = data_source(task.dataset, split, data_dir, task.offline)
  records = [source[i] for i in range(len(source))]
  columns = [[as_text(r[key]) for r in records] for key in task.text_keys]
  tokenizer = Tokenizer.from_str(tokenizer.to_str())  # a copy: padding settings are global
  tokenizer.enable_truncation(max_len)
  tokenizer.enable_padding(pad_id=PAD_ID, length=max_len)
  encodings = tokenizer.encode_batch(
    list(zip(*columns, strict=True)) if len(columns) == 2 else columns[0]
  )
  label_dtype = np.float32 if task.is_regression else np.int32
  return {
    "input_ids": np.array([e.ids for e in encodings], np.int32),
    "token_type_ids": np.array([e.type_ids for e in encodings], np.int32),
    "label": np.array([r[task.label_key] for r in records], label_dtype),
  }


# ------------------------------------------------------------------------------------ batches


def training_dataset(
  rows: dict[str, np.ndarray] | grain.MapDataset, batch_size: int, seed: int
) -> grain.MapDataset:
  """Endless training batches: seeded shuffle, reshuffled each epoch, this process's share.

  Args:
    rows: in-memory arrays with one row per example, or a grain dataset of examples.
    batch_size: the global batch size; each process gets its share.
    seed: shuffling seed.
  """
  per_process = batch_size // jax.process_count()
  if isinstance(rows, dict):
    num_rows = len(next(iter(rows.values())))
    dataset = grain.MapDataset.range(num_rows)
  else:
    dataset = rows
  dataset = dataset[jax.process_index() :: jax.process_count()]
  dataset = dataset.shuffle(seed=seed).repeat(None).batch(per_process, drop_remainder=True)
  if isinstance(rows, dict):  # batches of indices → rows, one numpy gather per array
    return dataset.map(lambda index: {key: value[index] for key, value in rows.items()})
  return dataset


def iterate(dataset: grain.MapDataset, state: dict | None = None):
  """A checkpointable iterator (`get_state()` / `set_state()`), prefetched in threads."""
  iterator = iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
  if state is not None:
    iterator.set_state(state)
  return iterator


def eval_batches(rows: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Every row once, in order, in fixed-size batches; `weight` is 0 on the last one's padding."""
  num_rows = len(next(iter(rows.values())))
  for start in range(0, num_rows, batch_size):
    index = np.arange(start, start + batch_size)
    valid = index < num_rows
    index = np.where(valid, index, 0)
    batch = {key: value[index] for key, value in rows.items()}
    batch["weight"] = valid.astype(np.float32)
    yield batch


# ------------------------------------------------------------------------------ a run's data


@dataclasses.dataclass
class Data:
  """What the training loop reads: endless training batches, evaluation splits, tokens."""

  train: grain.MapDataset  # training batches
  eval_splits: dict[str, dict[str, np.ndarray]]  # split name → rows (see `eval_batches`)
  tokens_per_batch: int


def pretraining_data(config: ml_collections.ConfigDict, corpus: Corpus, tokenizer) -> Data:
  """The corpus's training rows, and `config.eval_examples` validation rows."""
  if corpus.offline:

    def rows(split):
      return pretraining_rows(
        corpus, split, tokenizer, config.max_len, config.packing, config.data_dir
      )

    train_rows, eval_rows = {"input_ids": rows(corpus.train_split)}, rows(corpus.eval_split)
  else:

    def rows(split):
      return streaming_pretraining_dataset(
        corpus, split, tokenizer, config.max_len, config.data_dir
      )

    train_rows, stream = rows(corpus.train_split), rows(corpus.eval_split)
    count = min(len(stream), config.eval_examples)
    eval_rows = np.stack([stream[i]["input_ids"] for i in range(count)])
  return Data(
    train=training_dataset(train_rows, config.batch_size, config.seed),
    eval_splits={"validation": {"input_ids": eval_rows[: config.eval_examples]}},
    tokens_per_batch=config.batch_size * config.max_len,
  )


def finetuning_data(config: ml_collections.ConfigDict, task: Task, tokenizer) -> Data:
  """The task's training rows, and its evaluation splits (and test split, where public)."""

  def arrays(split):
    return finetuning_arrays(task, split, tokenizer, config.max_len, config.data_dir)

  splits = {split: arrays(split) for split in task.eval_splits}
  if task.test_split:
    splits["test"] = arrays(task.test_split)
  return Data(
    train=training_dataset(arrays(task.train_split), config.batch_size, config.seed),
    eval_splits=splits,
    tokens_per_batch=config.batch_size * config.max_len,
  )
