"""Input pipeline: TFDS data sources → tokens → numpy batches, through grain.

* Tokenizer: HF `tokenizers` WordPiece, BERT-style (lower-casing, [CLS] … [SEP]); either loaded
  from a `vocab.txt` (e.g. bert-base-uncased's) or trained on the pretraining corpus and cached.
* Pretraining: the offline corpus is tokenised once in memory and packed (or truncated) into
  `[N, max_len]` rows; C4 streams: each document is tokenised when read and truncated. Masking
  happens on the device, in the train step (`train.train.mask_tokens`).
* Fine-tuning: single sentences or pairs, truncated and padded to `max_len`.
* Training batches come from a grain dataset with seeded, per-epoch shuffling; its iterator
  state (a small dict) is saved in checkpoints, so a resumed run sees the same batches.

Batches are dicts of numpy arrays: `input_ids` `[B, L]` int32 (pad = 0), `token_type_ids`
`[B, L]` int32, and for fine-tuning `label` `[B]` (int32, float32 for regression).
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from tokenizers import (
  Tokenizer,
  decoders,
  models,
  normalizers,
  pre_tokenizers,
  processors,
  trainers,
)

from train import datasets
from train.tasks import Corpus, Task

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID = 0  # "[PAD]" is the first token of every vocabulary we build or load


# ------------------------------------------------------------------------------- data sources


def data_source(dataset: str, split: str, data_dir: str | None, offline: bool):
  """Random-access TFDS source (array_record, no TensorFlow); builds offline sets first."""
  if offline:
    data_dir = datasets.prepare(dataset, data_dir)
  try:
    return tfds.data_source(dataset, split=split, data_dir=data_dir)
  except Exception as error:  # tfds raises several kinds for a missing dataset
    raise RuntimeError(
      f"Could not read {dataset}[{split}] from {data_dir or 'the default TFDS data_dir'}: "
      f"{error}. Prepare it first (e.g. `tfds build {dataset} --file_format=array_record "
      f"--data_dir=...`) or point the config's data_dir at a folder that holds it."
    ) from error


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------- tokenizer


def bert_tokenizer(vocab: dict[str, int] | str, *, lowercase: bool = True) -> Tokenizer:
  """BERT's WordPiece tokenizer from a vocabulary dict or a `vocab.txt` path."""
  if isinstance(vocab, str):
    model = models.WordPiece.from_file(vocab, unk_token="[UNK]")
  else:
    model = models.WordPiece(vocab, unk_token="[UNK]")
  tokenizer = Tokenizer(model)
  tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
  tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tokenizer.decoder = decoders.WordPiece()
  ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
  if None in ids.values() or ids["[PAD]"] != PAD_ID:
    raise ValueError(f"The vocabulary must hold {SPECIAL_TOKENS} with [PAD] = 0; got {ids}.")
  tokenizer.post_processor = processors.BertProcessing(
    ("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"])
  )
  return tokenizer


def load_tokenizer(
  *,
  vocab_file: str = "",
  corpus: Corpus | None = None,
  vocab_size: int = 8192,
  train_examples: int = 0,
  lowercase: bool = True,
  data_dir: str | None = None,
  cache_dir: str | pathlib.Path | None = None,
) -> Tokenizer:
  """The `vocab_file`'s tokenizer, or one trained on `corpus` (cached in `cache_dir`).

  `train_examples` > 0 trains on the first that many examples only (for large corpora).
  """
  if vocab_file:
    return bert_tokenizer(vocab_file, lowercase=lowercase)
  if corpus is None:
    raise ValueError("Give a vocab_file, or a pretraining corpus to train a vocabulary on.")
  cache = pathlib.Path(cache_dir or datasets.wheels.cache_dir()) / "tokenizers"
  casing = "uncased" if lowercase else "cased"
  path = cache / f"{corpus.name}-{train_examples or 'all'}-wordpiece-{vocab_size}-{casing}.json"
  if path.exists():
    return Tokenizer.from_file(str(path))
  source = data_source(corpus.dataset, corpus.train_split, data_dir, corpus.offline)
  trainer = trainers.WordPieceTrainer(
    vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
  )
  untrained = bert_tokenizer(
    {token: i for i, token in enumerate(SPECIAL_TOKENS)}, lowercase=lowercase
  )
  untrained.train_from_iterator(_corpus_texts(corpus, source, train_examples), trainer)
  tokenizer = bert_tokenizer(untrained.get_vocab(), lowercase=lowercase)
  cache.mkdir(parents=True, exist_ok=True)
  tokenizer.save(str(path))
  return tokenizer


def _corpus_texts(corpus: Corpus, source, limit: int = 0) -> Iterator[str]:
  for i in range(min(len(source), limit) if limit else len(source)):
    text = _text(source[i][corpus.text_key])
    yield corpus.clean(text) if corpus.clean else text


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
  texts = list(_corpus_texts(corpus, source))
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
    tokens = tokenizer.encode(_text(record[corpus.text_key]), add_special_tokens=False).ids
    return {"input_ids": truncate([tokens], max_len, cls_id, sep_id)[0]}

  return grain.MapDataset.source(source).map(encode)


# ------------------------------------------------------------------------------- fine-tuning


def finetuning_arrays(
  task: Task, split: str, tokenizer: Tokenizer, max_len: int, data_dir: str | None = None
) -> dict[str, np.ndarray]:
  """A task's split: `input_ids`, `token_type_ids` `[N, max_len]` and `label` `[N]`."""
  source = data_source(task.dataset, split, data_dir, task.offline)
  records = [source[i] for i in range(len(source))]
  columns = [[_text(r[key]) for r in records] for key in task.text_keys]
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
