"""The train state and the pure train step.

The step is `train_step(setup, state, batch, hparams)`: `setup` holds what is static
(model, optimizers, head, regularizer, center mode: changing it recompiles), `hparams`
the traced numbers (`lam`, `alpha`, `learning_rate`, the head's scale and margin...:
changing them does not). It is composed of named pieces: `loss_and_grads`,
`update_centers` (one rule per center mode), `update_params` and `guard_divergence`.
Groups of runs and the compiled chunks of steps that train them: `cl_research.engine.groups`.
"""

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cl_research import errors
from cl_research.core import heads
from cl_research.core import losses
from cl_research.core import optim
from cl_research.core import partial_fc

CENTER_MODES = ('paper', 'gradient')
# What went non-finite first; `TrainState.diverged_code` k > 0 names DIVERGED_QUANTITIES[k - 1].
DIVERGED_QUANTITIES = ('loss', 'features', 'centers', 'params')


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree (vmap- and shard-friendly)."""
  params: Any
  opt_state: Any
  centers: jax.Array  # CxD
  center_opt_state: Any  # () in `paper` mode
  step: jax.Array
  rng: jax.Array  # raw uint32 key data (checkpointable), for stochastic layers
  diverged_at: jax.Array  # 0 while finite; else the step whose update went non-finite
  diverged_code: jax.Array  # 0 while finite; else 1 + index into DIVERGED_QUANTITIES
  grad_norm_sum: jax.Array  # sum over healthy steps of the pre-clip gradient norm
  grad_norm_max: jax.Array  # and its largest value
  clipped_steps: jax.Array  # healthy steps whose gradient the clip shrank
  radius: jax.Array  # ring loss's learned R (0 until a ring run's first step)
  batch_stats: Any = dataclasses.field(default_factory=dict)  # BatchNorm's running statistics


def diverged_quantity(code):
  """The name of a divergence code ('' for 0)."""
  return DIVERGED_QUANTITIES[int(code) - 1] if int(code) else ''


@dataclasses.dataclass(frozen=True)
class StepSetup:
  """The static parts of the train step: changing one recompiles, and runs that differ
  in one train in different groups."""
  model: nn.Module
  tx: optax.GradientTransformation
  head: str  # one of heads.HEADS
  regularizer: str  # one of regularizers.REGULARIZERS
  center_mode: str  # one of CENTER_MODES
  center_tx: Any  # an optax.GradientTransformation in `gradient` mode, else None
  unscale_lambda: bool  # `gradient` mode: the centers' step of KaiyangZhou's port
  grad_clip_norm: float  # the clip inside `tx` (0: none), to count when it engages
  clip_scope: str  # the params the clip sees (optim.CLIP_SCOPES)
  schedule: Any  # step -> the learning-rate multiplier (ring loss's radius follows it)
  partial_fc_rate: float = 1.0  # < 1: Partial FC samples this share of the classes
  classes_shards: int = 1  # the classifier's shards, each sampling its own classes


def make_setup(config, model, head, regularizer):
  gradient = config.centers.mode == 'gradient'
  return StepSetup(model=model, tx=optim.make_optimizer(config.optimizer, config.num_steps),
                   head=head, regularizer=regularizer, center_mode=config.centers.mode,
                   center_tx=optim.make_center_optimizer(config.centers) if gradient else None,
                   unscale_lambda=config.centers.unscale_lambda,
                   grad_clip_norm=config.optimizer.grad_clip_norm,
                   clip_scope=config.optimizer.clip_scope,
                   partial_fc_rate=config.loss.partial_fc_rate,
                   classes_shards=config.parallel.get('classifier_shard', 1),
                   schedule=optim.relative_schedule(config.optimizer, config.num_steps))


def apply_model(model, params, batch_stats, images, train):
  """(features, logits, batch_stats) of `model` on `images`. Models with BatchNorm
  (non-empty `batch_stats`) normalise with the batch's statistics and return updated
  running ones when `train`, and use the running ones otherwise."""
  if not batch_stats:
    features, logits = model.apply({'params': params}, images)
    return features, logits, batch_stats
  variables = {'params': params, 'batch_stats': batch_stats}
  if not train:
    features, logits = model.apply(variables, images, train=False)
    return features, logits, batch_stats
  (features, logits), updates = model.apply(variables, images, train=True,
                                            mutable=['batch_stats'])
  return features, logits, updates['batch_stats']


def loss_and_grads(setup, state, batch, hparams, sample=None):
  """The objective (`losses.objective`) at `state` on `batch` and its gradients:
  (grads {'params', and 'centers' in `gradient` mode, 'radius' for ring loss}, aux, the
  batch's features, the radius used, the updated BatchNorm statistics). Ring loss's
  radius starts at the first batch's mean feature norm. With a Partial FC `sample`
  the head and the regularizer see the sampled classes only (their classifier columns
  and centers, the labels as positions among them); aux's accuracy is then over them."""
  images, labels = batch['image'], batch['label']
  ring = setup.regularizer == 'ring'

  def loss_fn(params, centers, radius):
    features, logits, batch_stats = apply_model(setup.model, params, state.batch_stats,
                                                images, train=True)
    if ring:
      first = jax.lax.stop_gradient(jnp.mean(heads.safe_norm(features)))
      radius = jnp.where(state.step == 0, first, radius)
    classifier, seen_labels, seen_centers = params['classifier'], labels, centers
    if sample is not None:
      classifier = partial_fc.select(classifier, sample.index_K)
      seen_labels, seen_centers = sample.labels_B, jnp.take(centers, sample.index_K, axis=0)
      logits = features @ classifier['kernel'] + classifier.get('bias', 0.0)
    loss, aux = losses.objective(setup.head, setup.regularizer, features, logits,
                                 classifier, seen_labels, seen_centers, radius, hparams,
                                 state.step)
    return loss, (aux, features, radius, batch_stats)

  names = ('params',) + ('centers',) * (setup.center_mode == 'gradient') + ('radius',) * ring
  argnums = tuple({'params': 0, 'centers': 1, 'radius': 2}[n] for n in names)
  grads, (aux, features, radius, batch_stats) = jax.grad(
      loss_fn, argnums=argnums, has_aux=True)(state.params, state.centers, state.radius)
  return dict(zip(names, grads)), aux, features, radius, batch_stats


def update_centers(setup, state, features, labels, center_grads, hparams):
  """(centers, center_opt_state) after one step.

  `paper`: ECCV16 Eq. 4 with alpha on the features of this forward pass, as each
  regularizer defines it (`losses.paper_center_update`). `gradient`:
  the centers' optimizer on their gradient, `lam * sum_i (c - x_i) / B` per center
  (summed over its examples), so a plain SGD step is `lr * lam * sum_i (c - x_i) / B`
  and centers never move at lam 0; alpha plays no part. With `unscale_lambda`, the
  step of KaiyangZhou/pytorch-center-loss: their loss has no 1/2 and weight
  `lam_theirs = lam / 2`, and they divide the centers' gradient by it, so the gradient
  becomes `2 sum_i (c - x_i) / B` and `centers.learning_rate` is their `lr_cent`.
  """
  if setup.center_mode == 'paper':
    return (losses.paper_center_update(setup.regularizer, state.centers, features, labels,
                                       hparams['alpha'], hparams), state.center_opt_state)
  if setup.unscale_lambda:
    lam = hparams['lam']
    center_grads = center_grads * jnp.where(lam > 0, 2.0 / lam, 0.0)
  updates, center_opt_state = setup.center_tx.update(center_grads, state.center_opt_state,
                                                     state.centers)
  return optax.apply_updates(state.centers, updates), center_opt_state


def update_params(setup, state, grads, learning_rate):
  """(params, opt_state) after one step of the network's optimizer at `learning_rate`."""
  updates, opt_state = setup.tx.update(grads, state.opt_state, state.params)
  updates = jax.tree.map(lambda u: learning_rate * u, updates)
  return optax.apply_updates(state.params, updates), opt_state


def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def divergence_code(loss, features, centers, params):
  """0 if all are finite, else 1 + the index in DIVERGED_QUANTITIES of the first that is not."""
  finite = [jnp.isfinite(loss), jnp.all(jnp.isfinite(features)), _all_finite(centers),
            _all_finite(params)]
  return jnp.select([~f for f in finite], list(range(1, len(finite) + 1)), 0).astype(jnp.int32)


GUARDED_FIELDS = ('params', 'opt_state', 'centers', 'center_opt_state', 'grad_norm_sum',
                  'grad_norm_max', 'clipped_steps', 'radius', 'batch_stats')


def guard_divergence(state, updated, code):
  """`updated` (the state after a step) where the run is healthy; else `state` with its
  step advanced and, the first time, the step and `code` of the divergence recorded: a
  diverged run keeps its last finite values."""
  healthy = (state.diverged_at == 0) & (code == 0)
  diverges_now = (state.diverged_at == 0) & (code > 0)
  keep_if_healthy = lambda new, old: jax.tree.map(lambda n, o: jnp.where(healthy, n, o),
                                                  new, old)
  return state.replace(
      **{f: keep_if_healthy(getattr(updated, f), getattr(state, f)) for f in GUARDED_FIELDS},
      step=state.step + 1,
      diverged_at=jnp.where(diverges_now, state.step + 1, state.diverged_at),
      diverged_code=jnp.where(diverges_now, code, state.diverged_code))


def train_step(setup, state, batch, hparams):
  """(setup, state, batch, hparams) -> (state, aux): one step of one run, pure. aux holds
  `losses.objective`'s terms, `grad_norm` (the global norm, before the clip, of the
  gradient of the params the clip sees: `optimizer.clip_scope`), `clipped` (1 where the
  clip engaged, else 0) and `learning_rate` (the step's rate after the schedule); the
  state counts the steps the clip engaged."""
  sample = None
  if setup.partial_fc_rate < 1:
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    sample = partial_fc.sample(batch['label'], state.centers.shape[0], setup.partial_fc_rate,
                               setup.classes_shards, key)
  grads, aux, features, radius, batch_stats = loss_and_grads(setup, state, batch, hparams,
                                                             sample)
  centers, center_opt_state = update_centers(setup, state, features, batch['label'],
                                             grads.get('centers'), hparams)
  params, opt_state = update_params(setup, state, grads['params'], hparams['learning_rate'])
  if sample is not None:  # only the sampled classes' columns and optimizer state move
    params = partial_fc.keep_sampled(params, state.params, sample.mask_C)
    opt_state = partial_fc.keep_sampled(opt_state, state.opt_state, sample.mask_C)
  if 'radius' in grads:  # plain gradient descent at the network's learning rate
    radius = radius - hparams['learning_rate'] * setup.schedule(state.step) * grads['radius']
  grad_norm = optim.clipped_norm(grads['params'], setup.clip_scope)
  clipped = (grad_norm > setup.grad_clip_norm) if setup.grad_clip_norm else False
  aux = {**aux, 'grad_norm': grad_norm, 'clipped': jnp.float32(clipped),
         'learning_rate': hparams['learning_rate'] * setup.schedule(state.step)}
  updated = state.replace(params=params, opt_state=opt_state, centers=centers,
                          center_opt_state=center_opt_state, radius=radius,
                          batch_stats=batch_stats,
                          grad_norm_sum=state.grad_norm_sum + grad_norm,
                          grad_norm_max=jnp.maximum(state.grad_norm_max, grad_norm),
                          clipped_steps=state.clipped_steps + jnp.int32(clipped))
  code = divergence_code(aux['loss'], features, centers, params)
  return guard_divergence(state, updated, code), aux


STATIC_LOSS_NUMBERS = ('partial_fc_rate',)  # shape the compiled step: never traced


def loss_numbers(loss_config):
  """config.loss's numbers, each a traced hyperparameter of the step under its own name
  (the heads' and regularizers', and any a config adds for a registered regularizer)."""
  return {k: v for k, v in loss_config.items()
          if errors.is_number(v) and k not in STATIC_LOSS_NUMBERS}


def is_due(step, every, num_steps):
  """Whether something done every `every` steps (0: never) happens after `step`; the
  last step always counts."""
  return bool(every) and (step % every == 0 or step == num_steps)


def hparams(config, lam, alpha, learning_rate=None, scale=None, margin=None):
  """The traced hyperparameters of one run, as float32 scalars: its point's (a None,
  for a value the run does not use: 0) and the rest of `config.loss`'s numbers."""
  values = {'lam': lam, 'alpha': alpha, 'scale': scale, 'margin': margin,
            'learning_rate': (config.optimizer.learning_rate if learning_rate is None
                              else learning_rate),
            **{k: v for k, v in loss_numbers(config.loss).items()
               if k not in ('scale', 'margin')}}
  return {k: jnp.float32(v or 0.0) for k, v in values.items()}


def predict(model, head, params, images, batch_stats=None):
  """(features, margin-free logits) of a batch: what evaluation sees (BatchNorm with its
  running statistics)."""
  features, logits, _ = apply_model(model, params, batch_stats, images, train=False)
  if head != 'softmax':  # the model's own logits are the softmax head's
    logits = heads.inference_logits(head, features, params['classifier'])
  return features, logits


def in_batches(fn, inputs_N, batch_size):
  """`fn` (returning a tuple of arrays) over `inputs_N` in batches of `batch_size`, the
  last zero-padded so one compiled program serves them all; each output concatenated
  and cut to N, as numpy."""
  n = inputs_N.shape[0]
  pad = (-n) % batch_size
  padded = np.concatenate([inputs_N, np.zeros((pad,) + inputs_N.shape[1:], inputs_N.dtype)])
  outs = [fn(padded[i:i + batch_size]) for i in range(0, len(padded), batch_size)]
  return tuple(np.concatenate([np.asarray(o[k]) for o in outs])[:n]
               for k in range(len(outs[0])))


def init_state(setup, image_shape, num_classes, feature_size, init_scale, seed):
  """A fresh TrainState from `seed`: params, and centers uniform in +-`init_scale` (0:
  zeros, the Caffe layer's default; 0.05: a Keras `Embedding`'s default)."""
  init_rng, centers_rng, state_rng = jax.random.split(jax.random.key(seed), 3)
  dummy = jnp.zeros((1,) + tuple(image_shape), jnp.uint8)
  variables = setup.model.init(init_rng, dummy)
  centers = jax.random.uniform(centers_rng, (num_classes, feature_size), jnp.float32,
                               -init_scale, init_scale)
  params = variables['params']
  return TrainState(
      params=params, opt_state=setup.tx.init(params), centers=centers,
      batch_stats=variables.get('batch_stats', {}),
      center_opt_state=setup.center_tx.init(centers) if setup.center_tx else (),
      step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(state_rng),
      diverged_at=jnp.zeros((), jnp.int32), diverged_code=jnp.zeros((), jnp.int32),
      grad_norm_sum=jnp.zeros((), jnp.float32), grad_norm_max=jnp.zeros((), jnp.float32),
      clipped_steps=jnp.zeros((), jnp.int32), radius=jnp.zeros((), jnp.float32))


def validate_centers(config):
  """Raises ConfigError where `config.centers` cannot work with the sweep."""
  c = config.centers
  errors.check_choice(c.mode, 'centers.mode', CENTER_MODES)
  errors.check_choice(c.optimizer, 'centers.optimizer', optim.OPTIMIZERS)
  errors.check(errors.is_number(c.init_scale) and c.init_scale >= 0,
               f'centers.init_scale={c.init_scale!r} must be >= 0')
  errors.check(errors.is_number(c.learning_rate) and c.learning_rate > 0,
               f'centers.learning_rate={c.learning_rate!r} must be > 0')
  errors.check(errors.is_number(c.momentum) and 0 <= c.momentum < 1,
               f'centers.momentum={c.momentum!r} must be in [0, 1)')
  if c.mode == 'gradient':
    alphas = set(config.sweep.alpha) | set(config.sweep_extra.alpha)
    errors.check(len(alphas) <= 1, f'sweep.alpha={tuple(config.sweep.alpha)!r} sweeps alpha, '
                 "which only the paper's center update uses; with centers.mode='gradient' "
                 "give one value or use centers.mode='paper'")
