"""BERT's WordPiece tokenizer (HF `tokenizers`): loaded from a `vocab.txt`, or trained and cached.

Every vocabulary we build or load holds `SPECIAL_TOKENS`, with [PAD] = 0.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib

from tokenizers import (
  Tokenizer,
  decoders,
  models,
  normalizers,
  pre_tokenizers,
  processors,
  trainers,
)

from train import files, locks
from train.data import offline, wheels
from train.data.tasks import Corpus

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID = 0  # "[PAD]" is the first token of every vocabulary we build or load

__all__ = [
  "PAD_ID",
  "SPECIAL_TOKENS",
  "Tokenizer",
  "bert_tokenizer",
  "hub_tokenizer",
  "load_tokenizer",
  "read_tokenizer",
  "special_ids",
]


def special_ids(tokenizer: Tokenizer) -> tuple[int, ...]:
  """The ids of the bracketed tokens: [PAD], [UNK], [CLS], [SEP], [MASK] and, in BERT's own
  vocabularies, [unused0] … (ids 1 … 99 and 104 … 998 in bert-base-uncased's)."""
  vocab = tokenizer.get_vocab()
  return tuple(
    sorted(i for token, i in vocab.items() if len(token) > 2 and token[0] + token[-1] == "[]")
  )


def read_tokenizer(path: str | pathlib.Path) -> Tokenizer:
  """A tokenizer saved as JSON; a missing or unreadable file raises an error naming it."""
  try:
    return Tokenizer.from_str(pathlib.Path(path).read_text())
  except FileNotFoundError as error:
    raise FileNotFoundError(f"There is no tokenizer at {path}.") from error
  except Exception as error:  # tokenizers raises its own kinds for a broken file
    raise ValueError(
      f"The tokenizer {path} cannot be read ({error}). Restore it, or remove it and rerun."
    ) from error


def hub_tokenizer(path: str | pathlib.Path) -> Tokenizer:
  """A Hugging Face folder's `tokenizer.json` as the pipeline uses tokenizers: without the
  truncation and padding it may carry (the pipeline sets its own per use), checked to hold
  `SPECIAL_TOKENS` with [PAD] = 0.

  Raises:
    ValueError: the file is damaged, or lacks a special token (both name the file).
  """
  tokenizer = read_tokenizer(path)
  tokenizer.no_truncation()
  tokenizer.no_padding()
  ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
  if None in ids.values() or ids["[PAD]"] != PAD_ID:
    raise ValueError(
      f"The tokenizer {path} must hold {SPECIAL_TOKENS} with [PAD] = 0 (BERT's); it has {ids}. "
      "Give a BERT-style checkpoint, or put its vocab.txt beside the tokenizer.json."
    )
  return tokenizer


def bert_tokenizer(vocab: dict[str, int] | str, *, lowercase: bool = True) -> Tokenizer:
  """BERT's WordPiece tokenizer from a vocabulary dict or a `vocab.txt` path."""
  if isinstance(vocab, str):
    if not pathlib.Path(vocab).is_file():
      raise FileNotFoundError(f"The vocabulary file {vocab} does not exist.")
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
  """The `vocab_file`'s tokenizer, or one trained on `corpus` (cached in `cache_dir`; processes
  sharing the cache train it once).

  `train_examples` > 0 trains on the first that many examples only (for large corpora).
  """
  if vocab_file:
    return bert_tokenizer(vocab_file, lowercase=lowercase)
  if corpus is None:
    raise ValueError("Give a vocab_file, or a pretraining corpus to train a vocabulary on.")
  cache = pathlib.Path(cache_dir or wheels.cache_dir()) / "tokenizers"
  casing = "uncased" if lowercase else "cased"
  path = cache / f"{corpus.name}-{train_examples or 'all'}-wordpiece-{vocab_size}-{casing}.json"
  if path.exists():
    with contextlib.suppress(ValueError):  # unreadable: rebuilt below, with the lock held
      return read_tokenizer(path)
  # Processes that need the same vocabulary at once take turns: the first trains it, the others
  # read it (WordPiece training breaks ties differently each time, so two would differ).
  with locks.cache_lock(path.with_name(path.name + ".lock"), f"the tokenizer {path.name}"):
    if path.exists():  # again after the wait: the process waited for may have written it
      try:
        return read_tokenizer(path)
      except ValueError as error:  # a truncated cache is rebuilt
        logging.warning("%s; training the vocabulary again.", error)
    return _train_tokenizer(path, corpus, vocab_size, train_examples, lowercase, data_dir)


def _train_tokenizer(path, corpus, vocab_size, train_examples, lowercase, data_dir) -> Tokenizer:
  """A WordPiece vocabulary trained on `corpus`, written to `path`."""
  source = offline.data_source(corpus.dataset, corpus.train_split, data_dir, corpus.offline)
  trainer = trainers.WordPieceTrainer(
    vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
  )
  untrained = bert_tokenizer(
    {token: i for i, token in enumerate(SPECIAL_TOKENS)}, lowercase=lowercase
  )
  untrained.train_from_iterator(corpus.texts(source, train_examples), trainer)
  tokenizer = bert_tokenizer(untrained.get_vocab(), lowercase=lowercase)
  files.write_text(path, tokenizer.to_str())
  return tokenizer
