"""Hugging Face BERT and RoFormer checkpoints ↔ our configs and parameters; upcycling.

A checkpoint is a state dict: PyTorch parameter names → arrays, as `model.state_dict()` or a
`model.safetensors` file give them (`safetensors.numpy.load_file`), with or without the
`bert.` / `roformer.` prefix and with old `LayerNorm.gamma/beta` names. Its config is the
`config.json` dict (or `transformers` config `.to_dict()`).

  config = config_from_hf(json.load(open("config.json")))
  params = params_from_hf(safetensors.numpy.load_file("model.safetensors"), config)
  logits = MaskedLM(config).apply({"params": params}, input_ids)

`load_checkpoint(directory)` reads a checkpoint folder as `save_pretrained` writes it;
`upcycle` builds a MöbiusBERT / MöbiusRoFormer from the same checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from mobius_jax.models.config import ModelConfig
from mobius_jax.models.transformer import MaskedLM, SequenceClassifier, Transformer

# HF config.json key → ModelConfig field.
_CONFIG_KEYS = {
  "vocab_size": "vocab_size",
  "hidden_size": "hidden_size",
  "num_hidden_layers": "num_layers",
  "num_attention_heads": "num_heads",
  "intermediate_size": "intermediate_size",
  "hidden_act": "hidden_act",
  "hidden_dropout_prob": "hidden_dropout",
  "attention_probs_dropout_prob": "attention_dropout",
  "max_position_embeddings": "max_position_embeddings",
  "type_vocab_size": "type_vocab_size",
  "initializer_range": "initializer_range",
  "layer_norm_eps": "layer_norm_eps",
}
# State-dict entries we never read: buffers, the tied decoder, BERT's next-sentence head.
_IGNORED_PREFIXES = (
  "embeddings.position_ids",
  "encoder.embed_positions.",
  "cls.predictions.decoder.",
  "cls.seq_relationship.",
)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A Hugging Face checkpoint folder, as `load_checkpoint` reads it."""

  directory: pathlib.Path  # the folder of config.json and the weights
  config: dict  # config.json
  state_dict: dict[str, np.ndarray] | None  # model.safetensors; None when weights were not read
  vocab_file: pathlib.Path | None  # vocab.txt, where the folder has one
  tokenizer_file: pathlib.Path | None = None  # tokenizer.json (HF `tokenizers`), where it has one


# Weights in formats this package does not read (they would need torch, TensorFlow or msgpack).
_OTHER_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")


def model_folder(directory: str | pathlib.Path) -> pathlib.Path:
  """The folder of a checkpoint's config.json and weights: `directory` itself, or in a
  sentence-transformers folder the Transformer module's folder that its modules.json names."""
  directory = pathlib.Path(directory)
  modules = directory / "modules.json"
  if (directory / "config.json").is_file() or not modules.is_file():
    return directory
  entries = _read_json(modules)
  paths = [e.get("path", "") for e in entries if e.get("type", "").endswith(".Transformer")]
  return directory / paths[0] if paths else directory


def load_checkpoint(directory: str | pathlib.Path, *, weights: bool = True) -> Checkpoint:
  """Reads a HF BERT / RoFormer folder: `config.json`, `model.safetensors`, and the tokenizer's
  `vocab.txt` and / or `tokenizer.json` where it has them.

  The folder is one that `save_pretrained` wrote, or a sentence-transformers model (the
  Transformer module's files at its root or in the folder its modules.json names). Its state
  dict may have the `bert.` / `roformer.` prefix or not, task heads or none.

  Args:
    directory: the folder.
    weights: read `model.safetensors` too (False: only the config, e.g. to build the model).

  Raises:
    FileNotFoundError: a file the folder must hold is missing (the message names it, and what
      to do where the weights are in another format).
    ValueError: a file is damaged (the message names it).
  """
  directory = model_folder(directory)
  config_file, weights_file = directory / "config.json", directory / "model.safetensors"
  needed = [config_file, weights_file] if weights else [config_file]
  missing = [path.name for path in needed if not path.is_file()]
  if missing:
    others = [name for name in _OTHER_WEIGHTS if (directory / name).exists()]
    hint = (
      f"Its weights are in {others[0]}, which this package does not read: convert them to "
      "safetensors (in transformers, `AutoModel.from_pretrained(DIR).save_pretrained(DIR, "
      "safe_serialization=True)`)."
      if others and "model.safetensors" in missing
      else "Give a folder that `save_pretrained` wrote (config.json, model.safetensors, and "
      "vocab.txt or tokenizer.json)."
    )
    raise FileNotFoundError(
      f"{directory} is no Hugging Face checkpoint folder: it lacks {', '.join(missing)}. {hint}"
    )
  config = _read_json(config_file)
  state_dict = _read_weights(weights_file) if weights else None
  vocab_file, tokenizer_file = directory / "vocab.txt", directory / "tokenizer.json"
  return Checkpoint(
    directory,
    config,
    state_dict,
    vocab_file if vocab_file.is_file() else None,
    tokenizer_file if tokenizer_file.is_file() else None,
  )


def _read_json(path: pathlib.Path):
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ValueError(
      f"{path} is no valid JSON ({error}): the file is damaged. Download or copy the "
      "checkpoint folder again."
    ) from error


def _read_weights(weights_file: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    from safetensors.numpy import load_file
  except ImportError as error:
    raise ImportError("Reading model.safetensors needs `pip install safetensors`.") from error
  try:
    return load_file(str(weights_file))
  except Exception as error:  # safetensors raises its own SafetensorError, and OSError
    raise ValueError(
      f"{weights_file} cannot be read ({type(error).__name__}: {error}): the file is damaged or "
      "incomplete. Download or copy the checkpoint folder again."
    ) from error


def config_from_hf(hf_config: Mapping, **overrides) -> ModelConfig:
  """A `ModelConfig` from a HF BERT or RoFormer `config.json` dict, plus field overrides."""
  family = hf_config.get("model_type")
  if family == "mobius":
    raise ValueError(
      "model_type='mobius' is a Möbius model that mobius_jax exported: read it with "
      "`mobius_jax.models.export.load_pretrained(DIR)`."
    )
  if family not in ("bert", "roformer"):
    raise ValueError(f"model_type={family!r}: only 'bert' and 'roformer' checkpoints convert.")
  if hf_config.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError("Only BERT's absolute position embeddings are supported.")
  if hf_config.get("rotary_value", False):
    raise ValueError("RoFormer's rotary_value=True (rotary values) is not supported.")
  fields = {ours: hf_config[theirs] for theirs, ours in _CONFIG_KEYS.items() if theirs in hf_config}
  if family == "roformer":
    fields["embedding_size"] = hf_config.get("embedding_size") or hf_config["hidden_size"]
  return ModelConfig(family=family, **{**fields, **overrides})


def config_to_hf(config: ModelConfig) -> dict:
  """The HF `config.json` dict of a vanilla (layout "none") config."""
  _check_vanilla(config)
  hf = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_KEYS.items()}
  hf["model_type"] = config.family
  if config.family == "roformer":
    hf["embedding_size"] = config.embedding_width
  return hf


def params_from_hf(state_dict: Mapping[str, np.ndarray], config: ModelConfig) -> dict:
  """Our parameters from a HF state dict, for a vanilla config (e.g. from `config_from_hf`).

  Returns:
    `{"backbone": …}` plus `"mlm_head"` and `"classifier"` where the checkpoint has them: the
    `params` of `Transformer` (under "backbone"), `MaskedLM` or `SequenceClassifier`.
  """
  _check_vanilla(config)
  return read_state(state_dict, config, _name_map)


def read_state(state_dict: Mapping[str, np.ndarray], config: ModelConfig, name_map) -> dict:
  """Our parameters from a state dict whose names `name_map(config, heads)` gives (a list of
  (our path, its name, transposed)); every entry is checked against the config's shapes.

  Raises:
    ValueError: an entry is missing, has another shape, or is not used (the message names it).
  """
  state = _normalise_names(state_dict)
  heads = {
    "pooler": "pooler.dense.weight" in state,
    "mlm_head": "cls.predictions.bias" in state,
    "classifier": any(name.startswith("classifier.") for name in state),
  }
  labels = state.get("classifier.weight", state.get("classifier.out_proj.weight"))
  expected = _expected_shapes(config, heads, None if labels is None else np.shape(labels)[0])
  flat, used = {}, set()
  for ours, theirs, transposed in name_map(config, heads):
    if theirs not in state:
      raise ValueError(f"The checkpoint lacks {theirs!r} (for {'/'.join(ours)}).")
    value = np.asarray(state[theirs])
    value = value.T if transposed else value
    if value.shape != expected[ours]:
      shape = value.T.shape if transposed else value.shape
      raise ValueError(
        f"Checkpoint entry {theirs!r} has shape {shape}; this config expects "
        f"{expected[ours][::-1] if transposed else expected[ours]}. Does the config match the "
        "checkpoint (sizes, vocabulary, family)?"
      )
    flat[ours] = value
    used.add(theirs)
  unused = sorted(k for k in set(state) - used if not k.startswith(_IGNORED_PREFIXES))
  if unused:
    raise ValueError(
      f"The checkpoint has entries this {config.family} config does not use: {unused[:8]}"
      f"{' …' if len(unused) > 8 else ''}. Is it a {config.family} checkpoint of this size?"
    )
  return traverse_util.unflatten_dict(flat)


def params_to_hf(params: Mapping, config: ModelConfig, *, prefix: bool = True) -> dict:
  """A HF state dict (numpy arrays, PyTorch names) from our vanilla parameters.

  Args:
    params: `{"backbone": …}` with optional `"mlm_head"` and `"classifier"`.
    config: their vanilla config.
    prefix: put the backbone under `bert.` / `roformer.`, as HF's task models do.

  Returns:
    What `load_state_dict` of the matching HF model takes (the tied MLM decoder included).
  """
  _check_vanilla(config)
  state = write_state(params, config, _name_map)
  if "mlm_head" in params:
    state["cls.predictions.decoder.weight"] = state["embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
  return with_prefix(state, config.family) if prefix else state


def write_state(params: Mapping, config: ModelConfig, name_map) -> dict:
  """The state dict (numpy arrays, unprefixed names) of `params` under the names that
  `name_map(config, heads)` gives, as for `read_state`."""
  flat = traverse_util.flatten_dict(dict(params))
  heads = {
    "pooler": "pooler" in params["backbone"],
    "mlm_head": "mlm_head" in params,
    "classifier": "classifier" in params,
  }
  state = {}
  for ours, theirs, transposed in name_map(config, heads):
    value = np.asarray(flat[ours])
    # Contiguous copies: safetensors' numpy `save_file` writes a transposed view's buffer as is.
    state[theirs] = np.ascontiguousarray(value.T if transposed else value)
  return state


def with_prefix(state: Mapping, prefix: str) -> dict:
  """The backbone's entries of a state dict under `prefix.`, as a HF task model names them."""
  return {
    k if k.startswith(("cls.", "classifier.")) else f"{prefix}.{k}": v for k, v in state.items()
  }


UPCYCLE_FORMS = ("copied", "preserving")
# The ModelConfig fields each form sets unless given (a model to upcycle into must have them).
UPCYCLE_FIELDS = {"copied": {}, "preserving": {"mobius_query": "linear", "mobius_imag_gate": True}}


def upcycle(
  state_dict: Mapping[str, np.ndarray],
  hf_config: Mapping,
  *,
  layout: str = "framed",
  source_layers: list[int] | None = None,
  form: str = "copied",
  **overrides,
) -> tuple[ModelConfig, dict]:
  """A Möbius model initialised from a pretrained HF BERT / RoFormer checkpoint.

  `form="preserving"` (BERT checkpoints) gives a model that computes the checkpoint's outputs
  at initialisation, while every Möbius coefficient has a gradient: the imaginary channel a
  Möbius layer takes from the real side starts silent (`mobius_imag_gate`, at 0), queries are
  Möbius maps after the source's query (`mobius_query="linear"`, scaled by √2 for the complex
  score's 1/√(2C)) starting at the exact identity, keys and values have the source's kernels
  and imaginary biases (which reach only the imaginary channel at first, and give the maps'
  imaginary parts their gradients), and the imaginary channel's last LayerNorm starts at scale
  and bias 0, so that it adds nothing where it joins the real one.

  `form="copied"`: vanilla layers, embeddings and heads take the checkpoint's weights unchanged.
  Each Möbius layer starts from its source layer: both channels' LayerNorms and feed-forward
  blocks are
  copies of the source's; keys, values, the output projection and the linear queries become
  complex dense layers that act on each channel as the source acts on its input: the pair
  (x, y) goes to (W x + b, W y + b) (real kernel W, complex bias (1 + i) b); the Möbius maps
  start as the exact identity. With `mobius_query="linear"` the Möbius heads' linear part
  takes the source's query weights too; with the default element-wise query (no query matrix)
  a Möbius head's query starts as its complex input itself. `mobius_key_value="elementwise"`
  keys and values start as the identity scaling. With `mobius_embeddings="split"` (and a
  Möbius layer 0) the embeddings' `norm` (trained on word + position + type) normalises word +
  type, and the new `position_norm` starts as LayerNorm's own init: scale ones, bias zeros.

  Args:
    state_dict, hf_config: the checkpoint, as for `params_from_hf` and `config_from_hf`.
    layout: the Möbius layout of the new model.
    source_layers: the source layer of each new layer; default 0, 1, … (the new model may be
      shallower than the checkpoint: `num_layers=11` in `overrides` keeps layers 0 … 10).
    form: "copied" or "preserving" (see above).
    **overrides: other `ModelConfig` fields (num_layers, num_mobius_heads, mobius_*…).

  Returns:
    (config, params) for `MaskedLM`, `SequenceClassifier` or `Transformer`, as in
    `params_from_hf`.
  """
  if form not in UPCYCLE_FORMS:
    raise ValueError(f"form={form!r}: use one of {UPCYCLE_FORMS}.")
  source_config = config_from_hf(hf_config)
  source = params_from_hf(state_dict, source_config)
  overrides = {**UPCYCLE_FIELDS[form], **overrides}
  config = dataclasses.replace(source_config, layout=layout, **overrides)
  if form == "preserving":
    _check_preserving(config)
  source_layers = list(range(config.num_layers)) if source_layers is None else source_layers
  if len(source_layers) != config.num_layers or not all(
    0 <= s < source_config.num_layers for s in source_layers
  ):
    raise ValueError(
      f"source_layers={source_layers} must name one of the checkpoint's "
      f"{source_config.num_layers} layers for each of the {config.num_layers} new layers."
    )
  if config.split_embeddings:
    scale = source["backbone"]["embeddings"]["norm"]["scale"]
    source["backbone"]["embeddings"]["position_norm"] = {
      "scale": np.ones(config.hidden_size, scale.dtype),
      "bias": np.zeros(config.hidden_size, scale.dtype),
    }
  old_layers = source["backbone"]["encoder"]
  new_layers = {}
  complex_layer = _preserving_layer if form == "preserving" else _complex_layer
  for i, (kind, s) in enumerate(zip(config.layer_kinds, source_layers, strict=True)):
    layer = old_layers[f"layer_{s}"]
    new_layers[f"layer_{i}"] = layer if kind == "V" else complex_layer(layer, config)
    if kind == "M" and config.mobius_imag_gate and (i == 0 or config.layer_kinds[i - 1] == "V"):
      new_layers[f"imag_gate_{i}"] = np.zeros(config.hidden_size, np.float32)
  source["backbone"]["encoder"] = new_layers
  return config, source


def _check_preserving(config: ModelConfig) -> None:
  """The options under which `_preserving_layer` computes its source layer's outputs."""
  wanted = {
    "family": "bert",  # RoFormer's rotary pairs are not a complex head's dimensions
    "mobius_query": "linear",
    "mobius_key_value": "dense",
    "mobius_score": "hermitian",
    "mobius_embeddings": "stream",
    "mobius_imag_gate": True,
  }
  wrong = {k: getattr(config, k) for k, v in wanted.items() if getattr(config, k) != v}
  if wrong:
    raise ValueError(
      f"form='preserving' needs {wanted}; got {wrong}. Use form='copied' (in a training "
      "config, upcycle_form='copied') for these options."
    )


def _preserving_layer(layer: Mapping, config: ModelConfig) -> dict:
  """The Möbius layer that computes vanilla layer `layer`'s output on its real channel, with
  the imaginary channel silent at first (see `upcycle`'s form "preserving")."""

  def complex_dense(dense, columns=slice(None), *, scale=1.0, imag_bias=True):
    kernel, bias = dense["kernel"][:, columns] * scale, dense["bias"][columns] * scale
    return {
      "kernel_real": kernel,
      "kernel_imag": np.zeros_like(kernel),  # the imaginary input must not reach the real part
      "bias_real": bias,
      "bias_imag": bias.copy() if imag_bias else np.zeros_like(bias),
    }

  mobius_dims = config.mobius_heads * config.head_dim
  source = layer["attention"]
  # Queries × √2: the complex score divides by √(2C) where the source's divides by √C. No
  # imaginary query bias: a real query leaves the keys' imaginary parts out of the scores.
  query = functools.partial(complex_dense, scale=np.sqrt(2.0), imag_bias=False)
  attention = {name: complex_dense(source[name]) for name in ("key", "value", "output")}
  if mobius_dims:
    attention["query_linear"] = query(source["query"], slice(0, mobius_dims))
    # The exact identity of the pole-safe form n·conj(m) / (|m|² + ε): a = 1 + ε, d = 1.
    identity = np.zeros((4, 2, mobius_dims), np.float32)
    identity[0, 0], identity[3, 0] = 1.0 + config.mobius_eps, 1.0
    attention["query_mobius"] = {"coefficients": identity}
  if mobius_dims < config.hidden_size:
    attention["query"] = query(source["query"], slice(mobius_dims, None))
  out = {"attention": attention}
  for part in ("real", "imag"):
    for name in ("attention_norm", "mlp", "mlp_norm"):
      out[f"{name}_{part}"] = layer[name]
  norm = layer["mlp_norm"]
  out["mlp_norm_imag"] = {key: np.zeros_like(value) for key, value in norm.items()}
  return out


def _complex_layer(layer: Mapping, config: ModelConfig) -> dict:
  """The Möbius layer that starts from vanilla layer params `layer` (see `upcycle`)."""

  def complex_dense(dense, columns=slice(None)):
    # Both channels get the bias, (x, y) → (W x + b, W y + b): each channel is projected as the
    # source projects its input, so the imaginary channel, added to the real one where the last
    # Möbius layer leaves, carries the source's bias terms as the real one does. On random
    # BERT and RoFormer checkpoints this started closer to the source's masked-LM distribution
    # (KL) than the complex extension W(x + iy) + b (bias on the real part only) in most
    # settings, in all with biases as large as the kernels' outputs; with tiny biases they tie.
    kernel, bias = dense["kernel"][:, columns], dense["bias"][columns]
    return {
      "kernel_real": kernel,
      "kernel_imag": np.zeros_like(kernel),
      "bias_real": bias,
      "bias_imag": bias.copy(),
    }

  hidden = config.hidden_size
  mobius_dims = config.mobius_heads * config.head_dim
  source = layer["attention"]
  attention = {"output": complex_dense(source["output"])}
  for name in ("key", "value"):
    if config.mobius_key_value == "dense":
      attention[name] = complex_dense(source[name])
    else:
      attention[name] = {
        "scale": np.stack([np.ones(hidden), np.zeros(hidden)]).astype(np.float32),
        "bias": np.zeros((2, hidden), np.float32),
      }
  if mobius_dims:
    identity = np.zeros((4, 2, mobius_dims), np.float32)
    identity[0, 0] = identity[3, 0] = 1.0
    attention["query_mobius"] = {"coefficients": identity}
    if config.mobius_query == "linear":
      attention["query_linear"] = complex_dense(source["query"], slice(0, mobius_dims))
  if mobius_dims < hidden:
    attention["query"] = complex_dense(source["query"], slice(mobius_dims, None))
  out = {"attention": attention}
  for part in ("real", "imag"):
    for name in ("attention_norm", "mlp", "mlp_norm"):
      out[f"{name}_{part}"] = layer[name]
  return out


def _name_map(config: ModelConfig, heads: Mapping[str, bool]):
  """(our path, HF name, transposed) for the backbone and the heads that `heads` marks."""
  dense = lambda ours, theirs: [  # noqa: E731
    ((*ours, "kernel"), f"{theirs}.weight", True),
    ((*ours, "bias"), f"{theirs}.bias", False),
  ]
  norm = lambda ours, theirs: [  # noqa: E731
    ((*ours, "scale"), f"{theirs}.weight", False),
    ((*ours, "bias"), f"{theirs}.bias", False),
  ]
  table = lambda ours, theirs: [((*ours, "embedding"), f"{theirs}.weight", False)]  # noqa: E731

  emb = ("backbone", "embeddings")
  names = table((*emb, "word_embeddings"), "embeddings.word_embeddings")
  names += table((*emb, "token_type_embeddings"), "embeddings.token_type_embeddings")
  names += norm((*emb, "norm"), "embeddings.LayerNorm")
  if config.family == "bert":
    names += table((*emb, "position_embeddings"), "embeddings.position_embeddings")
  if config.embedding_width != config.hidden_size:
    names += dense((*emb, "projection"), "embeddings_project")
  for i in range(config.num_layers):
    ours, theirs = ("backbone", "encoder", f"layer_{i}"), f"encoder.layer.{i}"
    for name in ("query", "key", "value"):
      names += dense((*ours, "attention", name), f"{theirs}.attention.self.{name}")
    names += dense((*ours, "attention", "output"), f"{theirs}.attention.output.dense")
    names += norm((*ours, "attention_norm"), f"{theirs}.attention.output.LayerNorm")
    names += dense((*ours, "mlp", "intermediate"), f"{theirs}.intermediate.dense")
    names += dense((*ours, "mlp", "output"), f"{theirs}.output.dense")
    names += norm((*ours, "mlp_norm"), f"{theirs}.output.LayerNorm")
  if heads["pooler"]:
    names += dense(("backbone", "pooler"), "pooler.dense")
  if heads["mlm_head"]:
    names += dense(("mlm_head", "transform"), "cls.predictions.transform.dense")
    names += norm(("mlm_head", "transform_norm"), "cls.predictions.transform.LayerNorm")
    names += [(("mlm_head", "bias"), "cls.predictions.bias", False)]
  if heads["classifier"] and config.family == "bert":
    names += dense(("classifier",), "classifier")
  if heads["classifier"] and config.family == "roformer":
    names += dense(("classifier", "dense"), "classifier.dense")
    names += dense(("classifier", "out_proj"), "classifier.out_proj")
  return names


def _normalise_names(state_dict: Mapping) -> dict:
  """Drops the `bert.` / `roformer.` / `mobius.` prefix and renames old `gamma` / `beta`
  entries."""
  state = {}
  for name, value in state_dict.items():
    name = name.removeprefix("bert.").removeprefix("roformer.").removeprefix("mobius.")
    name = name.replace("LayerNorm.gamma", "LayerNorm.weight")
    state[name.replace("LayerNorm.beta", "LayerNorm.bias")] = value
  return state


def _check_vanilla(config: ModelConfig) -> None:
  if "M" in config.layer_kinds:
    raise ValueError(
      f"layout={config.layout!r} has Möbius layers, which HF models lack; convert a vanilla "
      "config (layout 'none'), or build a Möbius model from a checkpoint with `upcycle`."
    )


def _expected_shapes(
  config: ModelConfig, heads: Mapping[str, bool], num_labels: int | None
) -> dict:
  """Flattened path → shape of our parameters for `config` and the marked heads (the
  classifier's with `num_labels` outputs)."""
  ids = jnp.zeros((1, 1), jnp.int32)
  shapes, models = {}, []
  if heads["mlm_head"]:
    models.append(MaskedLM(config))
  if heads["classifier"]:  # its backbone has the pooler
    models.append(SequenceClassifier(config, num_labels=num_labels))
  if not heads["classifier"] and (heads["pooler"] or not models):  # tracing each model costs
    models.append(Transformer(config, with_pooler=heads["pooler"]))
  for model in models:
    tree = jax.eval_shape(model.init, jax.random.key(0), ids)["params"]
    if isinstance(model, Transformer):
      tree = {"backbone": tree}
    for path, leaf in traverse_util.flatten_dict(nn.meta.unbox(tree)).items():
      shapes[path] = leaf.shape
  return shapes
