"""mobius-jax: MöbiusAttention (Halacheva et al., arXiv 2409.12175) in JAX and Flax."""

from mobius_jax.ops import *  # noqa: F403  (the pure functions are the top-level API)
from mobius_jax.ops import __all__ as _ops_all

__version__ = "0.1.0"
__all__ = [*_ops_all, "__version__"]
