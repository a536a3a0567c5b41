"""`LayerConfig`: the hyperparameters of one encoder layer, vanilla or Möbius, validated."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

import jax.numpy as jnp

from mobius_jax.ops import IMPLEMENTATIONS, SCORE_MODES
from mobius_jax.ops.attention import Implementation, ScoreMode

Activation = Literal["gelu", "gelu_new", "relu"]
DType = Literal["float32", "bfloat16", "float16", "float64"]  # float64 needs jax_enable_x64
MobiusQuery = Literal["elementwise", "linear"]
MobiusKeyValue = Literal["dense", "elementwise"]
MobiusInit = Literal["identity", "unitary"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
DTYPES: tuple[str, ...] = get_args(DType)
MOBIUS_QUERIES: tuple[str, ...] = get_args(MobiusQuery)
MOBIUS_KEY_VALUES: tuple[str, ...] = get_args(MobiusKeyValue)
MOBIUS_INITS: tuple[str, ...] = get_args(MobiusInit)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerConfig:
  """Hyperparameters of one encoder layer; a wrong value raises a `ValueError` naming it.

  The defaults are BERT-base's. Möbius fields only matter to Möbius layers.
  """

  hidden_size: int = 768
  num_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: Activation = "gelu"  # exact (erf) GELU as in BERT; "gelu_new" is the tanh form
  layer_norm_eps: float = 1e-12
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  initializer_range: float = 0.02  # std of the normal initialisation of kernels and tables
  rotary: bool = False  # RoFormer's rotary position embedding on queries and keys
  rotary_base: float = 10_000.0
  # None: `jax.nn.dot_product_attention` where possible; "xla", "cudnn" or "einsum" to force;
  # "splash": the TPU splash attention kernel (`mobius_jax.ops.tpu_attention`; no attention
  # dropout).
  attention_implementation: Implementation = None
  dtype: DType = "float32"  # computation dtype; "bfloat16" for mixed precision
  param_dtype: DType = "float32"

  # Möbius layers.
  num_mobius_heads: int | None = None  # heads with a Möbius query; None = half of num_heads
  # The paper's per-dimension map, or "linear": map ∘ complex-linear query.
  mobius_query: MobiusQuery = "elementwise"
  # Full complex dense keys and values, or "elementwise" (per-dimension complex scalings).
  mobius_key_value: MobiusKeyValue = "dense"
  mobius_score: ScoreMode = "hermitian"
  mobius_init: MobiusInit = "identity"  # identity map plus noise, or "unitary": random rotations
  mobius_init_noise: float = 0.01  # std of the noise added to the identity initialisation
  mobius_eps: float = 1e-4  # ε of the pole-safe Möbius map

  def __post_init__(self):
    check_positive(self, "hidden_size", "num_heads", "intermediate_size")
    if self.hidden_size % self.num_heads:
      raise ValueError(
        f"hidden_size={self.hidden_size} must be a multiple of num_heads={self.num_heads}."
      )
    if self.rotary and self.head_dim % 2:
      raise ValueError(f"rotary needs an even head dim; got {self.head_dim}.")
    check_in(self, "hidden_act", ACTIVATIONS)
    check_in(self, "dtype", DTYPES)
    check_in(self, "param_dtype", DTYPES)
    check_in(self, "attention_implementation", IMPLEMENTATIONS)
    check_in(self, "mobius_query", MOBIUS_QUERIES)
    check_in(self, "mobius_key_value", MOBIUS_KEY_VALUES)
    check_in(self, "mobius_score", SCORE_MODES)
    check_in(self, "mobius_init", MOBIUS_INITS)
    if self.num_mobius_heads is not None and not 0 <= self.num_mobius_heads <= self.num_heads:
      raise ValueError(
        f"num_mobius_heads={self.num_mobius_heads} must lie in [0, num_heads={self.num_heads}] "
        "(or be None for half of the heads)."
      )
    for name in ("hidden_dropout", "attention_dropout"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name}={getattr(self, name)} must lie in [0, 1).")
    if self.attention_implementation == "splash" and self.attention_dropout > 0.0:
      raise ValueError(
        f"{type(self).__name__}.attention_implementation='splash' (the TPU splash attention "
        f"kernel) has no attention dropout, but attention_dropout={self.attention_dropout}: set "
        "attention_dropout=0.0 (as the paper's recipe does) or use another "
        "attention_implementation."
      )
    if self.mobius_eps < 0:
      raise ValueError(f"mobius_eps={self.mobius_eps} must be ≥ 0 (0 = exact map).")

  @property
  def head_dim(self) -> int:
    """Real width of a vanilla head; a Möbius head has this many complex dims."""
    return self.hidden_size // self.num_heads

  @property
  def mobius_heads(self) -> int:
    """The number of Möbius heads, with None resolved to half of the heads."""
    return self.num_heads // 2 if self.num_mobius_heads is None else self.num_mobius_heads

  @property
  def compute_dtype(self) -> Any:
    return jnp.dtype(self.dtype)

  @property
  def weight_dtype(self) -> Any:
    return jnp.dtype(self.param_dtype)

  @property
  def dtypes(self) -> dict[str, Any]:
    """The `dtype` and `param_dtype` arguments of every layer built from this config."""
    return {"dtype": self.compute_dtype, "param_dtype": self.weight_dtype}

  @property
  def dense_args(self) -> dict[str, Any]:
    """The arguments every dense layer (`dense`, `ComplexDense`) takes from this config."""
    return {"init_std": self.initializer_range, **self.dtypes}


def check_in(config, name: str, allowed: tuple) -> None:
  """Raises a `ValueError` naming the field unless `config.name` is one of `allowed`."""
  value = getattr(config, name)
  if value not in allowed:
    raise ValueError(f"{type(config).__name__}.{name}={value!r} is not one of {allowed}.")


def check_positive(config, *names: str) -> None:
  """Raises a `ValueError` naming the field unless each `config.name` is a positive int."""
  for name in names:
    value = getattr(config, name)
    if not isinstance(value, int) or value <= 0:
      raise ValueError(f"{type(config).__name__}.{name}={value!r} must be a positive int.")
