"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 by tests/test_partial_fc.py:
ArcFace with Partial FC (r 0.1) over 100,000 classes, the classifier and centers split
over a (batch 1, classes 4) mesh; trains 3 steps and prints as JSON the losses, how many
columns moved, and XLA's per-device memory of the compiled step at r 0.1 and 1.0."""

import functools
import json

import jax
import numpy as np

from cl_research import configs
from cl_research.core import partial_fc
from cl_research.core import step as train
from cl_research.core.models import lenets as models
from cl_research.platform import sharding

NUM_CLASSES, BATCH, D = 100_000, 64, 512


def compiled_step(rate, mesh):
  config = configs.face_config()
  config.optimizer.learning_rate, config.optimizer.momentum = 0.05, 0.9
  config.loss.partial_fc_rate = rate
  config.parallel.classifier_shard = 4
  model = models.SeedCNN(feature_size=D, num_classes=NUM_CLASSES, classifier_bias=False)
  setup = train.make_setup(config, model, 'arcface', 'none')
  state = jax.jit(functools.partial(train.init_state, setup, (16, 16, 1), NUM_CLASSES, D,
                                    0.0, 0))()
  shardings = sharding.face_state_shardings(state, mesh)
  state = jax.device_put(state, shardings)
  hparams = train.hparams(config, 0.0, 0.5, scale=64.0, margin=0.5)
  step = jax.jit(functools.partial(train.train_step, setup), donate_argnums=0,
                 out_shardings=(shardings, None))
  return state, step, hparams


parallel = configs.face_config().parallel
parallel.classifier_shard = 4
mesh = sharding.face_mesh(parallel)
rng = np.random.default_rng(0)
batches = [{'image': rng.integers(0, 256, (BATCH, 16, 16, 1)).astype(np.uint8),
            'label': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)} for _ in range(3)]
memory = {}
for rate in (0.1, 1.0):
  state, step, hparams = compiled_step(rate, mesh)
  analysis = step.lower(state, sharding.put_batch(batches[0], mesh), hparams).compile(
      ).memory_analysis()
  memory[str(rate)] = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
                       + analysis.output_size_in_bytes)
state, step, hparams = compiled_step(0.1, mesh)
before = np.asarray(state.params['classifier']['kernel'])
losses = []
for batch in batches:
  state, aux = step(state, sharding.put_batch(batch, mesh), hparams)
  losses.append(float(aux['loss']))
after = np.asarray(state.params['classifier']['kernel'])
print(json.dumps({
    'mesh': dict(mesh.shape), 'losses': losses,
    'finite': bool(np.all(np.isfinite(losses)) and np.all(np.isfinite(after))),
    'sampled_per_step': 4 * partial_fc.sample_size(NUM_CLASSES, 0.1, 4, BATCH),
    'moved_columns': int(np.sum(np.any(after != before, axis=0))),
    'classifier_shard_shape': list(state.params['classifier']['kernel']
                                   .addressable_shards[0].data.shape),
    'memory': memory,
}))
