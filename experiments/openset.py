"""python -m cl_research.run --config openset

  python -m cl_research.run --config openset:fashion_mnist
  python -m cl_research.run --config openset:smoke       # seconds, for tests

Does center loss help where it is meant to, on classes never seen in training? Train on
five classes of MNIST (or Fashion-MNIST), evaluate on the five held out: verification
pairs of unseen classes (cosine and Euclidean: 10-fold accuracy, ROC AUC, EER, TAR at
FAR 1e-2; TAR at 1e-3 stays empty, 3,000 negative pairs cannot estimate it) and open-set
identification (a gallery of the first three unseen classes, one template each, the mean
of 5 enrolment images; mated probes: their other images; non-mated probes: the last two
unseen classes, never trained on nor enrolled; rank-1 and DIR at FPIR 1e-2, and the DIR
with the trained classes' images as non-mated probes in its own column). Two splits
(unseen 5-9, and unseen 0-4), feature sizes 2 and 64,
softmax-only against softmax + center loss (lambda 0.01, 0.1), CosFace and ArcFace,
seeds 0, 1, 2: 60 runs at the CPU budget of `configs.apply_cpu` with the optimizer and
the head settings of `experiments/losses.py` (Adam 2e-3, s 16, CosFace m 0.2, ArcFace m
0.5: with SGD the normalised heads stall). Writes `roc.png`,
`summary_by_setting.csv` and `comparisons.csv` (every setting against softmax-only,
paired by seed); docs/openset.md is made from them (`python docs/openset_page.py`).
"""

from cl_research import configs

SUMMARY = 'open-set verification and identification, 60 runs on 2 splits x 2 sizes: ~11 min'
ARGS = {'mnist': 'MNIST (the default)', 'fashion_mnist': 'Fashion-MNIST',
        'smoke': 'seconds, a tiny net (tests)'}


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  config = configs.digits_config()
  configs.apply_cpu(config)
  config.figure = 'openset'
  config.data.name = 'fashion_mnist' if 'fashion_mnist' in tokens else 'mnist'
  config.data.num_train = 10_000
  config.sweep.holdout = ((5, 6, 7, 8, 9), (0, 1, 2, 3, 4))
  config.sweep.feature_size = (2, 64)
  config.sweep.seed = (0, 1, 2)
  config.sweep.lam = (0.01, 0.1)  # softmax + center loss
  config.sweep_extra.head = ('softmax', 'cosface', 'arcface')  # without a regularizer
  config.sweep_extra.regularizer = ('none',)
  config.sweep_extra.lam = (0.0,)
  config.sweep_extra.alpha = (0.5,)
  config.sweep_extra.feature_size = config.sweep.feature_size
  config.sweep_extra.seed = config.sweep.seed
  config.sweep_extra.holdout = config.sweep.holdout
  configs.apply_loss_family(config)
  config.grid = ('feature_size', 'lam')
  # center loss against softmax-only, and the margin heads against softmax-only
  config.analysis.baseline = ('regularizer=none', 'head=softmax')
  # the page's question: Holm over these four metrics' comparisons (the other metrics
  # are each a family of their own, shown as secondary)
  config.analysis.family = ('verification_accuracy', 'verification_accuracy_l2',
                            'openset_rank1', 'openset_dir_at_fpir_1e-2')
  if 'smoke' in tokens:
    configs.apply_smoke(config)
    config.sweep.seed = config.sweep_extra.seed = (0, 1)
  return config
