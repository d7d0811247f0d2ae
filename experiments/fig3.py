"""python -m cl_research.run --config fig3

  python -m cl_research.run --config fig3:fashion_mnist
  python -m cl_research.run --config fig3:cpu            # the 2-core CPU budget
  python -m cl_research.run --config fig3:fashion_mnist,smoke   # seconds, for tests

ECCV16 Fig. 3: softmax + center loss, alpha 0.5, lambda in {0.001, 0.01, 0.1, 1}, 2-D
features; writes `fig3.png` (2x2 like the paper, centers as white dots) and, per run,
`evolution.gif` of the test features over training. Default: the paper's net and the
Caffe solver on a 50K/10K split.
"""

from cl_research import configs

SUMMARY = 'ECCV16 Fig. 3, four lambdas: ~3 h 20 min on CPU, :cpu ~2 min'
ARGS = configs.FIGURE_ARGS


def get_config(arg=None):
  config = configs.figure_config(arg, 'fig3')
  config.sweep.lam = (0.001, 0.01, 0.1, 1.0)
  config.sweep.alpha = (0.5,)
  config.sweep.feature_size = (2,)
  config.snapshot_every = max(1, config.num_steps // 10)
  return config
