"""Masked-LM train step tokens/s: our BERT and MöbiusBERT against Hugging Face's FlaxBert.

Per model size, these steps are compiled, then timed in the same run, interleaved (round robin):
  * hf bert: `transformers.FlaxBertForMaskedLM`; logits at all B × L positions (that is how
    the model works), the loss over the masked ones (as in HF's `run_mlm_flax.py`);
  * bert: our `MaskedLM` through `train.state.train_step`; the last layer's output and the
    logits at the masked positions only (`masked_positions`, 15 % of the tokens);
  * bert, full last layer: ours with the last layer at all positions, the logits at the
    masked ones (an ablation: what the last layer's fast path gains);
  * bert, all logits: our model and step doing HF's work: the last layer and the logits at
    all positions, the loss over all positions with weight 0 where nothing was masked, as in
    HF's step (an ablation: the same arithmetic as HF, so its ratio is the speed of our code);
  * möbius bert: our MöbiusBERT preset of the same size (framed: Möbius first and last layers).
All share the project's optimiser (`train.optim.make_optimizer`: clipping, AdamW with the
default config's hyperparameters and weight-decay mask), BERT's masking (`mask_tokens`, done
inside the step for all), dropout 0.1 (`--dropout`), float32, vocabulary 30,522 and one fixed
batch of random token ids (no input pipeline: the step alone is timed). Compile time is the
wall time of `jit(...).lower(...).compile()`; GFLOP is XLA's count for the compiled step
(`cost_analysis()`), so `hf GFLOP ÷ GFLOP` is the speed-up the work alone allows.

How close to the machine: a float32 GEMM (N × N by N × N, N = `--gemm`) is timed in the same
round robin; its fastest call's FLOP rate is the machine's attainable rate, and `bound ms` =
GFLOP ÷ that rate, the time a step would take if all its work ran as fast as one large GEMM.
`bound ÷ step` is the share of that speed the step reaches.

transformers is no dependency of the project; install it into the benchmark's environment:
`pip install --no-deps transformers==4.57.6` plus its small dependencies.

  python benchmarks/train_step.py                          # tiny, small, base
  python benchmarks/train_step.py --sizes tiny --batch 2 --length 16 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import time

import common  # first: it puts the repository root, with train/ and configs/, on sys.path
import jax
import jax.numpy as jnp
import optax

from configs import default as default_config
from mobius_jax.models import MaskedLM, ModelConfig
from mobius_jax.models.params import count_params
from mobius_jax.ops import take_tokens
from mobius_jax.sharding import make_mesh, use_mesh
from train import objectives, optim, partitioning
from train import state as train_state
from train.tokenizer import PAD_ID, SPECIAL_TOKENS

VOCAB = 30_522
VARIANTS = ("hf bert", "bert", "bert, full last layer", "bert, all logits", "möbius bert")


def optimizer_config():
  """The default config's optimiser; a long schedule, so the rate is not zero while timed."""
  config = default_config.get_config()
  config.num_train_steps = 10_000
  return config


def masking(length: int) -> dict:
  return dict(
    rate=0.15,
    max_predictions=objectives.max_predictions(0.15, length),
    mask_id=SPECIAL_TOKENS.index("[MASK]"),
    special_ids=tuple(range(len(SPECIAL_TOKENS))),
    vocab_size=VOCAB,
  )


def at_every_position(ids, positions, labels, weights):
  """The masked positions' `[B, P]` labels and weights spread to `[B, L]`: 0 elsewhere."""
  rows = jnp.arange(ids.shape[0])[:, None]
  return (
    jnp.zeros_like(ids).at[rows, positions].set(labels),
    jnp.zeros(ids.shape).at[rows, positions].set(weights),
  )


class AllPositionsObjective(objectives.MaskedLMObjective):
  """HF's loss on our model: the logits at all B × L positions, the cross-entropy at every one,
  weighted 0 where nothing was masked (as `run_mlm_flax.py`): the same work as HF's step."""

  def loss(self, params, batch, rng, *, train: bool, diagnose: bool = False):
    ids, positions = batch["input_ids"], batch["positions"]
    logits = self.model.apply(
      {"params": params},
      ids,
      attention_mask=ids != PAD_ID,
      deterministic=not train,
      rngs={"dropout": rng},
    )  # [B, L, V]: no masked_positions
    labels, weights = at_every_position(ids, positions, batch["labels"], batch["weights"])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return (losses * weights).sum(), {"count": weights.sum()}


class FullLastLayerMaskedLM(MaskedLM):
  """Our `MaskedLM` with the last layer at every position, the logits at the masked ones."""

  def __call__(self, input_ids, *, masked_positions=None, deterministic=True, **kwargs):
    x = self.backbone(input_ids, deterministic=deterministic, **kwargs).sequence
    if masked_positions is not None:
      x = take_tokens(x, masked_positions)
    return self.mlm_head(x, self.backbone.embeddings.attend)


ABLATIONS = {
  "bert, full last layer": (FullLastLayerMaskedLM, objectives.MaskedLMObjective),
  "bert, all logits": (MaskedLM, AllPositionsObjective),
}


def our_step(
  preset: str,
  length: int,
  mesh,
  *,
  model_class=MaskedLM,
  objective_class=objectives.MaskedLMObjective,
  **overrides,
):
  """(jitted train step, initial state, parameter count) of our model on `mesh`."""
  model_config = ModelConfig.preset(preset, **{"vocab_size": VOCAB, **overrides})
  model = model_class(model_config)
  optimizer = optim.make_optimizer(optimizer_config())
  state, shardings = partitioning.sharded_init(
    train_state.init_fn(model, optimizer, length), mesh, jax.random.key(0)
  )
  objective = objective_class(model, masking(length))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step = jax.jit(
    functools.partial(train_state.train_step, objective=objective),
    in_shardings=(shardings, partitioning.batch_sharding(mesh), replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=0,
  )
  return step, state, count_params(state.params)


def hf_step(size: str, length: int, dropout: float = 0.1):
  """(jitted train step, initial state, parameter count) of `FlaxBertForMaskedLM`."""
  from transformers import BertConfig, FlaxBertForMaskedLM

  ours = ModelConfig.preset(f"bert-{size}", vocab_size=VOCAB)
  hf_config = BertConfig(
    vocab_size=VOCAB,
    hidden_size=ours.hidden_size,
    num_hidden_layers=ours.num_layers,
    num_attention_heads=ours.num_heads,
    intermediate_size=ours.intermediate_size,
    max_position_embeddings=ours.max_position_embeddings,
    hidden_dropout_prob=dropout,
    attention_probs_dropout_prob=dropout,
  )
  model = FlaxBertForMaskedLM(hf_config, seed=0)
  state = train_state.TrainState.create(
    apply_fn=model.__call__,
    params=model.params,
    tx=optim.make_optimizer(optimizer_config()),
    rng=jax.random.key(0),
  )
  mask_kwargs = masking(length)

  def step(state, batch, rng):
    mask_rng, dropout_rng = jax.random.split(rng)
    masked = objectives.mask_tokens(mask_rng, batch["input_ids"], **mask_kwargs)
    ids, positions, labels, weights = masked
    # run_mlm_flax.py's loss: labels at every position, weight 0 where nothing was masked.
    all_labels, all_weights = at_every_position(ids, positions, labels, weights)

    def loss_fn(params):
      logits = model(
        ids,
        attention_mask=ids != PAD_ID,
        params=params,
        dropout_rng=dropout_rng,
        train=True,
      ).logits
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, all_labels)
      return (losses * all_weights).sum() / all_weights.sum()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss}

  return jax.jit(step, donate_argnums=0), state, count_params(state.params)


def build(name: str, size: str, length: int, mesh, dropout: float = 0.1):
  """(jitted train step, initial state, parameter count) of one of `VARIANTS`."""
  if name == "hf bert":
    return hf_step(size, length, dropout)
  rates = {"hidden_dropout": dropout, "attention_dropout": dropout}
  if name == "möbius bert":
    return our_step(f"mobius_bert-{size}", length, mesh, **rates)
  model_class, objective_class = ABLATIONS.get(name, (MaskedLM, objectives.MaskedLMObjective))
  return our_step(
    f"bert-{size}",
    length,
    mesh,
    model_class=model_class,
    objective_class=objective_class,
    **rates,
  )


class Runner:
  """Holds a compiled step's state; each call runs one step and blocks until it is done."""

  def __init__(self, compiled, state, batch, mesh):
    self.compiled, self.state, self.batch, self.mesh = compiled, state, batch, mesh
    self.flops = compiled.cost_analysis()["flops"]  # XLA's count for one step
    self.rng, self.steps, self.losses = jax.random.key(1), 0, []

  def __call__(self):
    with use_mesh(self.mesh):
      self.state, metrics = self.compiled(
        self.state, self.batch, jax.random.fold_in(self.rng, self.steps)
      )
    self.steps += 1
    self.losses.append(metrics["loss"])
    jax.block_until_ready(self.state)


def compile_runner(step, state, batch, mesh) -> tuple[Runner, float]:
  """The step compiled for these arguments, and the seconds the compilation took."""
  start = time.perf_counter()
  with use_mesh(mesh):
    compiled = step.lower(state, batch, jax.random.key(1)).compile()
  return Runner(compiled, state, batch, mesh), time.perf_counter() - start


def random_batch(batch: int, length: int, seed: int = 0) -> dict:
  """Token ids drawn uniformly from the ordinary (non-special) tokens: no padding."""
  num_special = len(SPECIAL_TOKENS)
  ids = jax.random.randint(jax.random.key(seed), (batch, length), num_special, VOCAB)
  return {"input_ids": ids.astype(jnp.int32)}


class Gemm:
  """A float32 n × n by n × n matrix product; each call runs one, and its fastest time counts.

  The fastest, not the median: the machine's attainable rate is what the bound needs, and the
  product's time swings more than the steps' (126–212 GFLOP/s at n = 2048 on the development
  machine, the low values right after a large model's step).
  """

  def __init__(self, n: int):
    self.a, self.b = (jax.random.normal(jax.random.key(i), (n, n)) for i in range(2))
    self.product, self.flops, self.times = jax.jit(jnp.matmul), 2 * n**3, []

  def __call__(self):
    start = time.perf_counter()
    self.product(self.a, self.b).block_until_ready()
    self.times.append(time.perf_counter() - start)

  @property
  def rate(self) -> float:
    """FLOP/s of the fastest call after the first (which compiles)."""
    return self.flops / min(self.times[1:])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
  parser.add_argument("--dropout", type=float, default=0.1, help="every model's dropout rate")
  parser.add_argument("--gemm", type=int, default=2048, help="the reference GEMM's size N")
  args = parser.parse_args(argv)

  mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
  tokens = args.batch * args.length
  print(
    f"# {common.machine()}  float32, dropout {args.dropout}, batch {args.batch} × length "
    f"{args.length} = {tokens} tokens per step, vocabulary {VOCAB}, median of {args.repeats}"
  )
  print(
    common.table(
      [
        *("size", "model", "parameters", "compile s", "step ms", "tokens/s"),
        *("÷ hf tokens/s", "÷ bert step time", "GFLOP", "hf GFLOP ÷ GFLOP"),
        *("bound ms", "bound ÷ step"),
      ]
    )
  )
  for size in args.sizes:
    batch = jax.device_put(random_batch(args.batch, args.length))
    runners, compile_s, params = {}, {}, {}
    for name in args.variants:
      step, state, params[name] = build(name, size, args.length, mesh, args.dropout)
      runners[name], compile_s[name] = compile_runner(step, state, batch, mesh)
    gemm = Gemm(args.gemm)
    t = common.time_interleaved({**runners, "gemm": gemm}, args.repeats)
    rate = gemm.rate  # FLOP/s
    for name in args.variants:
      vs_hf = f"{t['hf bert'] / t[name]:.2f}×" if "hf bert" in t else ""
      vs_bert = f"{t[name] / t['bert']:.2f}×" if "bert" in t else ""
      flops = runners[name].flops
      flops_vs_hf = f"{runners['hf bert'].flops / flops:.2f}×" if "hf bert" in t else ""
      print(
        f"| {size} | {name} | {params[name] / 1e6:.1f} M | {compile_s[name]:.1f} "
        f"| {1e3 * t[name]:.0f} | {tokens / t[name]:.0f} | {vs_hf} | {vs_bert} "
        f"| {flops / 1e9:.1f} | {flops_vs_hf} | {1e3 * flops / rate:.0f} "
        f"| {flops / rate / t[name]:.0%} |",
        flush=True,
      )
    first = {name: f"{float(r.losses[0]):.3f}" for name, r in runners.items()}
    print(f"# {size}: first-step losses {first}; GEMM {args.gemm}³: {rate / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
  main()
