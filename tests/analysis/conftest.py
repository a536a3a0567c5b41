"""The analysis tests' shared fixture: `params`, the hand-built model of `known_maps`."""

import pytest

from tests.analysis.known_maps import known_params


@pytest.fixture(scope="module")
def params():
  """`known_maps.known_params()`: every map's type known in advance."""
  return known_params()
