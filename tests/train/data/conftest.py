"""The fixtures of the offline-data tests (`fake_wheels`): an empty cache and a pip that never
reaches the network, fake wheels there, or in the cache."""

from tests.train.data.fake_wheels import cache, cached_wheels, fake_wheels  # noqa: F401
