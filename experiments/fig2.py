"""python -m cl_research.run --config fig2

  python -m cl_research.run --config fig2:fashion_mnist
  python -m cl_research.run --config fig2:cpu            # 2-core CPU budget, ~1 minute
  python -m cl_research.run --config fig2:fashion_mnist,smoke   # seconds, for tests

ECCV16 Fig. 2: softmax loss only, LeNets++ with 2-D features, (a) train and (b) test
features; writes `fig2.png`. Default: the paper's net and the Caffe solver on a 50K/10K
split (about 50 min on 2 CPU cores with the oneDNN kernels; GPU not measured).
"""

from cl_research import configs


def get_config(arg=None):
  config = configs.figure_config(arg, 'fig2')
  config.sweep.lam = (0.0,)
  config.sweep.feature_size = (2,)
  return config
