"""python -m cl_research.run --config losses

  python -m cl_research.run --config losses:smoke       # seconds, for tests

Center loss beside the heads it is compared with: heads {softmax, NormFace, SphereFace,
CosFace, ArcFace} x regularizer {none, center} on MNIST with 2-D features, at the default
sweep's CPU budget (quarter-width LeNets++, 1,500 steps of 64, 10,000 training digits).
Writes `grid.png` (rows = regularizer, columns = head: the raw test features),
`grid_directions.png` (their directions on the unit circle, what the angular heads
classify by) and the usual summary. docs/losses.md shows both with the table.

Set for 2-D features, by measurement (docs/losses.md has the table): Adam at lr 2e-3
(with SGD at the sweep's rates the normalised heads stall: each step lengthens the
features, whose gradient shrinks as 1 / ||x||, and NormFace stays at 21% test accuracy);
s = 16 (10 and 30 do no better); CosFace m = 0.2, the geometric limit here, since ten
classes on a circle are 36 degrees apart and 1 - cos 36 = 0.19 (m 0.35: 90%); ArcFace's
own m = 0.5 rad (28.6 degrees). The face defaults s = 64 with m 0.35 / 0.5 reach 86% / 94%.
"""

from cl_research import configs

SUMMARY = 'softmax, NormFace, SphereFace, CosFace, ArcFace x {none, center}, 2-D MNIST: ~5 min'
ARGS = {'smoke': 'seconds, a tiny net (tests)'}
HEADS = ('softmax', 'normface', 'sphereface', 'cosface', 'arcface')


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  config = configs.digits_config()
  configs.apply_cpu(config)
  config.num_steps = 1_500
  config.data.num_train = 10_000
  config.sweep.head = HEADS
  config.sweep.regularizer = ('none', 'center')
  config.sweep.lam = (0.1,)
  config.sweep.feature_size = (2,)
  config.grid = ('regularizer', 'head')
  configs.apply_loss_family(config)
  config.analysis.family = ('test_accuracy', 'test_intra_inter', 'test_angular_intra_inter',
                            'verification_accuracy', 'verification_accuracy_l2')
  if 'smoke' in tokens:
    configs.apply_smoke(config)
  return config
