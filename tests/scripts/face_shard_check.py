"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 by tests/test_faces_cli.py:
trains a small network with softmax + center loss 3 steps on one device and on a
(batch 2, classes 2) mesh whose classifier and centers are split over `classes`, and
prints as JSON how the state is laid out and the largest differences."""

import functools
import json

import jax
import numpy as np

from cl_research import configs
from cl_research.core import losses
from cl_research.core import step as train
from cl_research.core.models import lenets as models
from cl_research.platform import sharding

NUM_CLASSES, BATCH = 2 * losses.ONE_HOT_MAX_CLASSES + 2, 8  # Eq. 4 by gather and scatter


def run(mesh):
  config = configs.face_config()
  config.optimizer.learning_rate = 0.05
  # the sharded parts are the classifier and the centers: any backbone shows them
  model = models.SeedCNN(feature_size=16, num_classes=NUM_CLASSES)
  setup = train.make_setup(config, model, 'softmax', 'center')
  state = train.init_state(setup, (16, 16, 1), NUM_CLASSES, 16, 0.05, 0)
  hparams = train.hparams(config, 0.1, 0.5)
  shardings = sharding.face_state_shardings(state, mesh)
  if mesh is not None:
    state = jax.device_put(state, shardings)
  step = jax.jit(functools.partial(train.train_step, setup),
                 out_shardings=None if mesh is None else (shardings, None))
  rng = np.random.default_rng(0)
  for _ in range(3):
    batch = {'image': rng.integers(0, 256, (BATCH, 16, 16, 1)).astype(np.uint8),
             'label': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)}
    state, _ = step(state, sharding.put_batch(batch, mesh), hparams)
  return state


one = run(None)
parallel = configs.face_config().parallel
parallel.classifier_shard = 2
mesh = sharding.face_mesh(parallel)
split = run(mesh)
diff = lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
print(json.dumps({
    'mesh': dict(mesh.shape),
    'centers_spec': str(split.centers.sharding.spec),
    'classifier_spec': str(split.params['classifier']['kernel'].sharding.spec),
    'centers_shard_shape': list(split.centers.addressable_shards[0].data.shape),
    'centers_diff': diff(one.centers, split.centers),
    'classifier_diff': diff(one.params['classifier']['kernel'],
                            split.params['classifier']['kernel']),
    'max_param_diff': max(diff(a, b) for a, b in zip(jax.tree.leaves(one.params),
                                                       jax.tree.leaves(split.params))),
}))
