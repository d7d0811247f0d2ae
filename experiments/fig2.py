"""python -m cl_research.run --config fig2

  python -m cl_research.run --config fig2:fashion_mnist
  python -m cl_research.run --config fig2:cpu            # the 2-core CPU budget
  python -m cl_research.run --config fig2:fashion_mnist,smoke   # seconds, for tests

ECCV16 Fig. 2: softmax loss only, LeNets++ with 2-D features, (a) train and (b) test
features; writes `fig2.png`. Default: the paper's net and the Caffe solver on a 50K/10K
split.
"""

from cl_research import configs

SUMMARY = 'ECCV16 Fig. 2, softmax-only 2-D features: ~50 min on CPU, :cpu under 1 min'
ARGS = configs.FIGURE_ARGS


def get_config(arg=None):
  config = configs.figure_config(arg, 'fig2')
  config.sweep.lam = (0.0,)
  config.sweep.feature_size = (2,)
  return config
