"""python -m cl_research.run --config fig3

  python -m cl_research.run --config fig3:fashion_mnist
  python -m cl_research.run --config fig3:cpu            # 2-core CPU budget, ~2 minutes
  python -m cl_research.run --config fig3:fashion_mnist,smoke   # seconds, for tests

ECCV16 Fig. 3: softmax + center loss, alpha 0.5, lambda in {0.001, 0.01, 0.1, 1}, 2-D
features; writes `fig3.png` (2x2 like the paper, centers as white dots) and, per run,
`evolution.gif` of the test features over training. Default: the paper's net and the
Caffe solver on a 50K/10K split (about 3 h 20 min on 2 CPU cores; GPU not measured).
"""

from cl_research import configs


def get_config(arg=None):
  config = configs.figure_config(arg, 'fig3')
  config.sweep.lam = (0.001, 0.01, 0.1, 1.0)
  config.sweep.alpha = (0.5,)
  config.sweep.feature_size = (2,)
  config.snapshot_every = max(1, config.num_steps // 10)
  return config
