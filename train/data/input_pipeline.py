"""Input pipeline: TFDS data sources → tokens (`train.data.tokenizer`) → numpy batches, via grain.

* Pretraining: the offline corpus is tokenised once in memory and packed (or truncated) into
  `[N, max_len]` rows; C4 streams: each batch's documents are tokenised together when read
  (`document_rows`: the leading tokens of each, one row per document). Masking
  happens on the device, in the train step (`train.core.objectives.mask_tokens`).
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
from collections.abc import Callable, Iterator, Sequence

import grain
import jax
import ml_collections
import numpy as np

from train.data.offline import data_source
from train.data.tasks import Corpus, Task, as_text
from train.data.tokenizer import PAD_ID, Tokenizer

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


# WordPiece tokens of English text average 4–5 characters; a row's tokens rarely need more than
# this many characters each, and when they do, `document_rows` tokenises the whole document.
CHARS_PER_TOKEN = 8


def document_rows(tokenizer: Tokenizer, texts: Sequence[str], max_len: int) -> np.ndarray:
  """One `[CLS] leading tokens [SEP]` row per document, padded: int32 `[N, max_len]`.

  A C4 document is several times longer than a row, so each is first cut at the first space
  after `CHARS_PER_TOKEN × (max_len − 2)` characters: words never span a space, so the tokens
  before the cut are the whole document's; only a document whose cut holds too few tokens is
  tokenised whole. The documents are tokenised together (`encode_batch`: Rust threads that
  release Python's GIL, so one process uses every core of its host; `encode` holds the GIL,
  so reader threads calling it use one core at most). `benchmarks/input_pipeline.py` measures
  both choices.
  """
  count = max_len - 2
  cuts = [text.find(" ", CHARS_PER_TOKEN * count) for text in texts]
  heads = [text if cut == -1 else text[:cut] for text, cut in zip(texts, cuts, strict=True)]
  ids = [e.ids for e in tokenizer.encode_batch(heads, add_special_tokens=False)]
  for i, (text, head) in enumerate(zip(texts, heads, strict=True)):
    if len(ids[i]) < count and len(head) < len(text):
      ids[i] = tokenizer.encode(text, add_special_tokens=False).ids
  cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
  return truncate(ids, max_len, cls_id, sep_id)


def streaming_documents(corpus: Corpus, split: str, data_dir: str | None = None):
  """A large corpus's (C4's) documents, read when indexed: a grain dataset of texts."""
  source = data_source(corpus.dataset, split, data_dir, corpus.offline)
  return grain.MapDataset.source(source).map(lambda record: as_text(record[corpus.text_key]))


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
  rows: dict[str, np.ndarray] | grain.MapDataset,
  batch_size: int,
  seed: int,
  buckets: tuple[int, ...] = (),
  encode: Callable[[list], dict[str, np.ndarray]] | None = None,
) -> grain.MapDataset:
  """Endless training batches: seeded shuffle, reshuffled each epoch, this process's share.

  Every process draws the same global batches of `batch_size` row indices and reads only its
  own slice of each (`process_share`): the global batch, the data position and so the run are
  the same for any number of processes.

  Args:
    rows: in-memory arrays with one row per example, or a grain dataset of examples (say,
      documents), which `encode` turns into arrays a batch share at a time.
    batch_size: the global batch size B.
    seed: shuffling seed.
    buckets: for in-memory rows, cut each batch's token arrays to the shortest of these lengths
      that holds its longest row (`bucket_length`), so that little padding is computed and few
      shapes compile; () keeps the rows' full length.
  """
  num_rows = len(next(iter(rows.values()))) if isinstance(rows, dict) else len(rows)
  batches = grain.MapDataset.range(num_rows).shuffle(seed=seed).repeat(None)
  batches = batches.batch(batch_size, drop_remainder=True)
  if not isinstance(rows, dict):
    return batches.map(process_share).map(lambda index: encode([rows[int(i)] for i in index]))
  lengths = token_lengths(rows)

  def read(index):  # one numpy gather per array, at the global batch's bucket length
    length = bucket_length(lengths[index], buckets)
    local = process_share(index)
    return {key: _cut(value[local], length) for key, value in rows.items()}

  return batches.map(read)


def token_lengths(rows: dict[str, np.ndarray]) -> np.ndarray:
  """Each row's length up to its last real token: `[N]`."""
  real = rows["input_ids"] != PAD_ID
  return np.where(real.any(axis=1), real.shape[1] - np.argmax(real[:, ::-1], axis=1), 0)


def bucket_length(lengths: np.ndarray, buckets: tuple[int, ...]) -> int | None:
  """The shortest bucket that holds the longest of `lengths`; None: the full length."""
  longest = int(lengths.max(initial=0))
  return next((bucket for bucket in sorted(buckets) if bucket >= longest), None)


def _cut(value: np.ndarray, length: int | None) -> np.ndarray:
  """Token arrays `[B, L]` cut to `[B, length]`; other arrays as they are."""
  return value[:, :length] if length is not None and value.ndim == 2 else value


def process_share(batch):
  """This process's rows of a global batch (an array `[B, ...]` or a dict of them)."""
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return batch
  return jax.tree.map(lambda x: x[index * len(x) // count : (index + 1) * len(x) // count], batch)


def iterate(dataset: grain.MapDataset, state: dict | None = None):
  """A checkpointable iterator (`get_state()` / `set_state()`), prefetched in threads."""
  iterator = iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
  if state is not None:
    iterator.set_state(state)
  return iterator


def eval_batches(
  rows: dict[str, np.ndarray], batch_size: int, buckets: tuple[int, ...] = ()
) -> Iterator[dict[str, np.ndarray]]:
  """Every row once, in order, in global batches of `batch_size`; `weight` is 0 on the last
  one's padding. With `buckets`, token arrays are cut as in `training_dataset`."""
  num_rows = len(next(iter(rows.values())))
  lengths = token_lengths(rows) if buckets else None
  for start in range(0, num_rows, batch_size):
    index = np.arange(start, start + batch_size)
    valid = index < num_rows
    index = np.where(valid, index, 0)
    length = bucket_length(lengths[index], buckets) if buckets else None
    batch = {key: _cut(value[index], length) for key, value in rows.items()}
    batch["weight"] = valid.astype(np.float32)
    yield batch


# ------------------------------------------------------------------------------ a run's data


@dataclasses.dataclass
class Data:
  """What the training loop reads: endless training batches, evaluation splits, tokens."""

  train: grain.MapDataset  # training batches
  eval_splits: dict[str, dict[str, np.ndarray]]  # split name → rows (see `eval_batches`)
  tokens_per_batch: int
  buckets: tuple[int, ...] = ()  # the batch lengths of evaluation too (`eval_batches`)


def pretraining_data(config: ml_collections.ConfigDict, corpus: Corpus, tokenizer) -> Data:
  """The corpus's training rows, and `config.eval_examples` validation rows."""
  if corpus.offline:

    def rows(split):
      return pretraining_rows(
        corpus, split, tokenizer, config.max_len, config.packing, config.data_dir
      )

    train_rows, eval_rows = {"input_ids": rows(corpus.train_split)}, rows(corpus.eval_split)
    encode = None
  else:

    def encode(texts):
      return {"input_ids": document_rows(tokenizer, texts, config.max_len)}

    train_rows = streaming_documents(corpus, corpus.train_split, config.data_dir)
    stream = streaming_documents(corpus, corpus.eval_split, config.data_dir)
    count = min(len(stream), config.eval_examples)
    eval_rows = encode([stream[i] for i in range(count)])["input_ids"]
  return Data(
    train=training_dataset(train_rows, config.batch_size, config.seed, encode=encode),
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
  buckets = tuple(config.length_buckets)
  return Data(
    train=training_dataset(arrays(task.train_split), config.batch_size, config.seed, buckets),
    eval_splits=splits,
    tokens_per_batch=config.batch_size * config.max_len,
    buckets=buckets,
  )
