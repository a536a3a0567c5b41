"""Every key the training loop reads, documented, with its default: `defaults()`.

The files in `configs/` start from `defaults()` and set what their job needs; the loop checks a
config's keys against it (a typo is an error) and fills the keys an older run's saved
config.json lacks from it.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def defaults() -> ml_collections.ConfigDict:
  """A new ConfigDict holding every key, set to its default."""
  config = ml_collections.ConfigDict()
  # "pretrain" (masked LM on `corpus`) or "finetune" (classification / regression on `task`).
  config.mode = "pretrain"
  config.corpus = "wikitext2"  # train.data.tasks.CORPORA: wikitext2 (offline) or c4 (online)
  config.task = "polarity"  # train.data.tasks.TASKS: GLUE's nine, polarity, ratings, trec, sms_spam
  # A preset "<model>-<size>" (mobius_jax.models.ModelConfig.preset) and ModelConfig field
  # overrides, e.g. {"layout": "MV", "num_mobius_heads": 1}.
  config.model = "bert-tiny"
  config.model_overrides = ml_collections.ConfigDict()
  # Fine-tuning starts from a pretraining run's workdir; "hf:DIR", a Hugging Face folder
  # (config.json, model.safetensors, vocab.txt or tokenizer.json); a pretrained checkpoint by
  # name (train.data.pretrained.PRETRAINED: "minilm"); or "" from scratch.
  config.init_from = ""
  # How a checkpoint becomes a model with Möbius layers (`mobius_jax.models.hf.upcycle`):
  # "preserving" (the upcycled model computes the checkpoint's outputs at the start; BERT
  # checkpoints) or "copied" (each Möbius layer's channels copies of its source layer; any
  # checkpoint). "preserving" won on validation: all-MiniLM-L6-v2 on polarity, 0.826 against
  # 0.737 (docs/results.md, the upcycling study).
  config.upcycle_form = "preserving"
  config.dtype = "float32"  # computation dtype; "bfloat16" for mixed precision
  config.seed = 0

  # Data. data_dir: the TFDS data_dir (None: the offline sets' cache, or TFDS's default).
  config.data_dir = None
  config.tokenizer = ml_collections.ConfigDict()
  config.tokenizer.vocab_file = ""  # a BERT vocab.txt; "" trains WordPiece on the corpus
  config.tokenizer.vocab_size = 8192  # of the trained vocabulary
  config.tokenizer.train_examples = 0  # corpus examples to train it on; 0 = all
  config.tokenizer.lowercase = True
  config.vocab_multiple = 64  # the model's vocabulary is rounded up to a multiple of this
  config.max_len = 128  # tokens per row
  # Fine-tuning: each batch is cut to the shortest of these lengths that holds its longest row
  # (less padding computed, one compilation per length); () pads every batch to max_len.
  config.length_buckets = ()
  config.packing = True  # pretraining: concatenate and cut into full rows (else truncate)
  # Of each row's ordinary tokens; of those, 80 % become [MASK], 10 % random, 10 % kept.
  config.mask_rate = 0.15
  config.batch_size = 32  # global (all processes together), per optimiser step
  config.grad_accum_steps = 1  # micro-batches per step (batch_size must divide)
  config.eval_batch_size = 64  # global
  config.eval_examples = 4096  # pretraining: validation rows scored at the end

  # Optimisation: AdamW with decoupled weight decay, warm-up then decay, gradient clipping.
  config.num_train_steps = 1000  # 0: evaluate the initial (or restored) state only
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3  # the peak
  config.optimizer.warmup_ratio = 0.06  # of the steps, linear from 0
  config.optimizer.schedule = "linear"  # or "cosine"
  config.optimizer.final_rate = 0.0  # the rate at the end, as a fraction of the peak
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.98
  config.optimizer.eps = 1e-6
  config.optimizer.weight_decay = 1e-2
  # "learning_rate": a step decays the weights by weight_decay × lr_t (optax's AdamW);
  # "schedule": by weight_decay × lr_t / peak (composer's DecoupledAdamW, MosaicBERT's).
  config.optimizer.weight_decay_scaling = "learning_rate"
  # Leaves never decayed: biases, LayerNorm and per-dimension scales, and Möbius coefficients
  # (decay would pull every map towards the degenerate all-zero matrix).
  config.optimizer.no_decay = ("bias", "bias_real", "bias_imag", "scale", "coefficients")
  # Modules or leaves, by name, that get no updates (and no optimiser state), e.g.
  # ("query_mobius",): the Möbius maps fixed at their initial coefficients (a control).
  config.optimizer.frozen = ()
  # (name, factor) pairs: the updates of what is under the name (or a pattern: "imag_gate_*")
  # scaled by the factor, e.g. (("query_mobius", 100.0),): an upcycled model's new parameters
  # on a faster rate. Names in `frozen` may be patterns too.
  config.optimizer.rate_multipliers = ()
  config.optimizer.grad_clip = 1.0  # global norm; 0: no clipping

  # Devices: mesh axis sizes over all devices; one of them may be -1 (fill).
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1
  config.mesh.fsdp = 1
  config.mesh.tensor = 1
  # Logical axis → mesh axes, as ((logical name, mesh axis, axes or None), …); unset:
  # mobius_jax.sharding.DEFAULT_RULES (batch over data × fsdp, weights over fsdp and tensor).
  config.logical_axis_rules = config_dict.placeholder(tuple)

  # Bookkeeping.
  # Resuming a workdir whose saved config differs in keys that change what its checkpoint means
  # (model, data, optimiser, seed…) is an error unless this is True (e.g. a lower learning rate
  # after a non-finite loss); run length, cadence and mesh may always change.
  config.resume_with_changes = False
  config.log_every_steps = 50
  # Also log, at every log step, gradient norms per parameter group, the Möbius maps'
  # determinants and how near their inputs come to the poles (`state.diagnostics_step`; one
  # more forward and backward pass per log step).
  config.diagnostics = False
  config.checkpoint_every_steps = 200
  config.keep_checkpoints = 2
  config.progress_bar = True
  return config
