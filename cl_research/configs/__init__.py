"""The configs experiments start from, their sizes (CPU, smoke) and arguments.

Experiments live in `experiments/NAME.py` as `get_config(arg)`; they start from a task's
config (`digits_config()`, `face_config()`, both built on `shared_config()`) and change
what they need; a config carries only its task's sections. Swept values have one home, `config.sweep`:
every run of an experiment is one point of the product of its tuples.
"""


import ml_collections

from cl_research import errors
from cl_research.configs import sweeps

ConfigError = errors.ConfigError


def shared_config():
  """What every task's config has: the sweep, the loss, the optimizer, the centers, the
  statistics over seeds, the loop's cadence and the process layout. A task's config
  (`digits_config`, `face_config`) adds its own data, model and evaluator sections."""
  c = ml_collections.ConfigDict()
  c.task = ''  # which task trains it (cl_research.engine.tasks): digits | faces
  c.sweep = ml_collections.ConfigDict()
  c.sweep.lam = (0.01,)  # center-loss weight; see cl_research.losses for the convention
  c.sweep.alpha = (0.5,)  # center update rate of ECCV16 Eq. 4 (`paper` mode only)
  c.sweep.feature_size = (2,)
  c.sweep.seed = (0,)  # init and data order
  # The loss axes: empty takes config.loss's value (cl_research.configs.sweeps).
  c.sweep.head = ()
  c.sweep.regularizer = ()
  c.sweep.scale = ()
  c.sweep.margin = ()
  c.sweep.holdout = ()  # tuples of classes held out of training; empty: data.holdout_classes
  # A second product grid whose runs are added to the first (ECCV16 Fig. 5 sweeps lambda
  # at one alpha and alpha at one lambda); unused while its tuples are empty.
  c.sweep_extra = ml_collections.ConfigDict({a: () for a in sweeps.SWEEP_AXES})

  # Heads and regularizers (cl_research.core.heads, cl_research.core.regularizers); each
  # run's values are in its point, the rest are traced hyperparameters of every run.
  c.loss = ml_collections.ConfigDict()
  c.loss.head = 'softmax'  # softmax | normface | cosface | arcface | combined | sphereface
  c.loss.regularizer = 'center'  # none | center | contrastive_center | ring | git | island
  #                                  | normalized_center
  c.loss.scale = 30.0  # s of normface, cosface, arcface, combined (AM-Softmax's 30)
  c.loss.cosface_margin = 0.35  # CosFace / AM-Softmax m
  c.loss.arcface_margin = 0.5  # ArcFace m (radians)
  c.loss.sphereface_m = 4.0  # SphereFace's integer m
  c.loss.m1 = 1.0  # the combined head: s (cos(m1 theta + m2) - m3)
  c.loss.m2 = 0.3
  c.loss.m3 = 0.2
  c.loss.sphereface_base = 1000.0  # SphereFace's annealing: max(lambda_min,
  c.loss.sphereface_gamma = 0.12  #   base (1 + gamma step)^-power)
  c.loss.sphereface_power = 1.0
  c.loss.sphereface_lambda_min = 5.0
  c.loss.contrastive_delta = 1.0  # contrastive-center's delta (Qi & Su)
  c.loss.git_weight = 10.0  # Git loss's push: lambda_G / lambda_C (0.1 / 0.01 on MNIST)
  c.loss.island_weight = 10.0  # island loss's lambda_1
  c.loss.partial_fc_rate = 1.0  # Partial FC: the share of classes a step samples (1: all)

  c.data = ml_collections.ConfigDict()
  c.data.name = ''
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)  # tfds data_dir

  c.model = ml_collections.ConfigDict()
  c.model.name = ''
  c.model.classifier_bias = True
  c.model.kernels = 'auto'  # convolution + PReLU: xla | onednn | auto (cl_research.platform.kernels)
  c.model.dtype = 'float32'  # or 'bfloat16': the convolution stages (cl_research.core.models)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_biases = False  # Caffe LeNets++: decay_mult 0 on biases (optim.decay_mask)
  c.optimizer.lr_decay = 0.8  # Caffe MNIST solver: x0.8 at 5k and 8k of 10k iterations
  c.optimizer.lr_decay_at = (0.5, 0.8)  # fractions of num_steps
  c.optimizer.lr_schedule = 'step'  # 'step': lr_decay at lr_decay_at; 'linear': to 0
  c.optimizer.warmup_frac = 0.0  # linear warm-up over this fraction of num_steps
  c.optimizer.grad_clip_norm = 0.0  # clip the network's gradient to this global norm; 0: off
  c.optimizer.clip_scope = 'all'  # what the clip sees: all | backbone (not the classifier)

  c.centers = ml_collections.ConfigDict()
  c.centers.mode = 'paper'  # 'paper': Eq. 4 with alpha; 'gradient': own optimizer
  c.centers.optimizer = 'sgd'  # gradient mode only
  c.centers.learning_rate = 0.5
  c.centers.momentum = 0.0
  c.centers.unscale_lambda = False  # gradient mode: KaiyangZhou's center step (core/step.py)
  c.centers.init_scale = 0.0  # centers start uniform in +-init_scale; 0: at the origin

  c.analysis = ml_collections.ConfigDict()
  # With several seeds, each setting is compared, paired by seed, with the same setting
  # at each of these values (comparisons.csv): 'lam=0', 'regularizer=none', 'head=softmax'
  c.analysis.baseline = ('lam=0',)
  # The metrics whose comparisons form one family: their p-values are Holm-adjusted
  # together (every other metric is a family of its own); cl_research/evaluation/statistics.py
  c.analysis.family = ()
  # Equivalence margins per metric (TOST): a difference within +-margin is `equivalent`
  c.analysis.margins = ml_collections.ConfigDict()

  # Evaluators, big_vision style: NAME: {type, settings} (cl_research.evaluation.evaluators)
  c.evals = ml_collections.ConfigDict()

  c.parallel = ml_collections.ConfigDict()
  # The `auto` (0) choices below are resolved per backend by cl_research.platform.runtime.
  c.parallel.max_group_size = 0  # most runs trained together; 0: auto (CPU 1, else all)
  c.parallel.steps_per_call = 0  # steps per compiled program; 0: auto (CPU 1, else a chunk)
  c.parallel.num_devices = 0  # local devices to use; 0: all
  c.parallel.local_processes = 0  # processes pinned to their own cores; 0: auto (CPU: 1/core)
  c.parallel.distributed = False  # jax.distributed.initialize(); also on if the env says so
  c.parallel.coordinator_address = ''  # '' : from the environment (or SLURM / TPU)
  c.parallel.num_processes = 0
  c.parallel.process_id = -1

  c.checkpoint_every = 0  # > 0: an orbax checkpoint of each group every N steps (resume)
  c.batch_size = 128
  c.num_steps = 10_000
  c.log_every = 100
  c.tensorboard = True  # TensorBoard event files beside each run's metrics.jsonl
  return c


def digits_config():
  """LeNets++ on MNIST with the Caffe solver's settings, one run at lam 0.01: the base of
  every experiment on in-memory classification data (the `digits` task)."""
  c = shared_config()
  c.task = 'digits'
  c.grid = ('feature_size', 'lam')  # grid.png's rows and columns (axes of a point)
  c.figure = ''  # '', 'fig2', 'fig3', 'fig5' or 'openset': a figure drawn after the sweep
  c.snapshot_every = 0  # > 0: test features every N steps -> evolution.gif per run
  c.plot_max_points = 10_000
  c.plots = True  # per-run scatters and histograms, the grids; False: features and numbers

  c.data.name = 'mnist'
  c.data.source = 'auto'
  c.data.manual_dir = ''  # a folder with the four IDX .gz files
  c.data.folder = ''  # data.name='folder': root/<class>/<image> (cl_research.data)
  c.data.num_train = 0  # a seeded, class-stratified subset of this size; 0: whole split
  c.data.num_test = 0
  c.data.subset_seed = 0  # which subset num_train / num_test keep
  c.data.test_fraction = 0.2  # of the bundled digits, or of a tfds train split without test
  c.data.channels = 0  # 0: as stored; 1: grey; 3: colour (cl_research.data)
  c.data.image_size = 0  # 0: as stored up to 64 px, else 64; N: N x N
  c.data.label_key = ''  # a tfds class-label feature; '': the builder's supervised label
  c.data.holdout_classes = ()  # open-set: removed from training, verification pairs only
  c.data.augment_shift = 0  # training images moved by up to this many pixels; 0: off
  c.data.num_digits = 2  # ndigit_mnist: digits per image (2: 100 numbers, 3: 1,000)
  c.data.ndigit_seed = 0  # which 70% of the numbers train (cl_research.data.ndigit)
  c.data.ndigit_train_images = 100_000  # images of the training numbers, in total
  c.data.ndigit_test_images = 10_000  # of the unseen numbers, and as many of the training
  #                                     ones (>= 100 per number in every split)
  c.data.ndigit_validation_images = 10_000  # of the training numbers, for model selection
  c.data.ndigit_validation_digits = 10_000  # MNIST training digits reserved for them

  c.model.name = 'lenets_pp'
  c.model.channels = (32, 64, 128)
  c.model.feature_prelu = False
  # the classifier's outputs: 'all' classes of the dataset, or the 'trained' ones only
  # (held-out classes are then no negatives of the softmax; engine/tasks/digits.py)
  c.model.classifier_classes = 'all'

  c.evals.clustering = ml_collections.ConfigDict(
      {'type': 'clustering', 'knn_k': 5, 'silhouette_samples': 2000})
  c.evals.verification = ml_collections.ConfigDict(  # LFW-style pairs of the test split
      {'type': 'pairs', 'pairs': 6000, 'seed': 0})  # 0 pairs: off
  c.evals.openset = ml_collections.ConfigDict({  # held-out classes (openset.py):
      'type': 'openset', 'enrolment_images': 5,  # the mean of this many per class enrolled,
      'unknown_classes': 2,  # the last 2 held-out classes never enrolled: non-mated probes
      'fpir': 1e-2, 'seed': 0})

  c.analysis.family = ('test_accuracy', 'test_intra_inter', 'verification_accuracy',
                       'verification_accuracy_l2')
  c.analysis.margins = ml_collections.ConfigDict({  # 1 point of an accuracy or a rate
      m: 0.01 for m in ('test_accuracy', 'train_accuracy', 'test_knn_accuracy',
                        'verification_accuracy', 'verification_accuracy_l2',
                        'verification_tar_at_far_1e-2', 'verification_tar_at_far_1e-2_l2',
                        'openset_rank1', 'openset_dir_at_fpir_1e-2',
                        'openset_dir_at_fpir_1e-2_known_unknowns')})

  c.parallel.group_strategy = 'auto'  # runs of a group: 'vmap', 'map' (lax.map), 'unroll'
  c.parallel.shard = 'auto'  # 'model' axis of a group, 'batch' of a lone run, 'none', 'auto'
  return c


def face_config():
  """The base of face experiments (`experiments/face.py`, the `faces` task): streamed
  face data, a face backbone and the face protocols. What each face source needs:
  docs/faces.md."""
  c = shared_config()
  c.task = 'faces'
  c.data.name = 'faces'
  c.data.face_source = 'synthetic'  # synthetic | rec | folder | tfds
  c.data.rec_dir = ''  # an insightface pack: train.rec, train.idx, property, *.bin
  c.data.folder = ''  # root/<identity>/<image>
  c.data.tfds_name = 'vgg_face2'
  c.data.tfds_split = 'train'
  c.data.label_key = ''  # the tfds feature holding the identity ('': the known one)
  c.data.val_dir = ''  # where <target>.bin lie ('': rec_dir)
  c.data.val_targets = ('lfw', 'cfp_fp', 'agedb_30')
  c.data.lfw_pairs = ''  # LFW's pairs.txt, with lfw_dir the LFW image folder
  c.data.lfw_dir = ''
  c.data.flip = True  # random horizontal flip of training images
  c.data.workers = 0  # Grain decoding processes; 0: threads of this process
  c.data.synthetic_identities = 32  # the generated pack (face:synthetic): identities,
  c.data.synthetic_images = 16  # images of each, and validation pairs (of as many
  c.data.synthetic_pairs = 400  # unseen identities as half the training ones)
  c.model.name = 'iresnet'  # iresnet | face_resnet (cl_research.core.models.backbones)
  c.model.depth = 50  # iresnet: 18 | 34 | 50 | 100
  c.model.width = 1.0  # channels x this (1: the reference network)
  c.model.kernels = 'xla'
  c.model.classifier_bias = False
  c.sweep.feature_size = (512,)
  c.evals.verification = ml_collections.ConfigDict({
      'type': 'face_pairs',
      'every': 2000,  # validation packs every N steps (and at 0 and the end); 0: the end
      'protocol': 'insightface',  # insightface | eccv16 (cl_research.evaluation.verification)
      'flip': 'sum',  # sum (insightface) | concat (ECCV16) | none
      'num_folds': 10, 'batch_size': 256})
  c.parallel.classifier_shard = 1  # devices the classifier and the centers split over
  c.parallel.local_processes = 1  # one run at a time, streaming with its own workers
  c.analysis.baseline = ()
  return c


def parse_arg(arg, allowed):
  """'a,b' -> {'a', 'b'}; an unknown token is a ConfigError naming the valid ones.
  `allowed`: the experiment's `ARGS` (token -> what it does)."""
  tokens = {t for t in (arg or '').split(',') if t}
  unknown = tokens - set(allowed)
  if unknown:
    raise ConfigError(f'unknown config argument {sorted(unknown)[0]!r}; '
                      f'valid: {", ".join(sorted(allowed))}')
  return tokens


def apply_cpu(c):
  """The 2-core-CPU budget: LeNets++ at 1/4 width, 900 SGD steps of 64 at lr 0.04, the
  gradient clipped to norm 5 (`fig*:cpu`; `sweep` raises the steps to 1,500). How each
  value was chosen, with the measurements: docs/cpu_budget.md."""
  c.model.channels = (8, 16, 32)
  c.batch_size = 64
  c.num_steps = 900
  c.optimizer.learning_rate = 0.04
  c.optimizer.grad_clip_norm = 5.0
  c.log_every = 50
  return c


def apply_loss_family(c):
  """The optimizer and head settings under which every head of the loss family trains on
  2-D features (`experiments/losses.py` says why; docs/losses.md has the measurements):
  Adam at 2e-3 without weight decay, s 16, CosFace m 0.2, ArcFace m 0.5."""
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.weight_decay = 0.0
  c.loss.scale = 16.0
  c.loss.cosface_margin = 0.2
  c.loss.arcface_margin = 0.5
  return c


FIGURE_ARGS = {'mnist': 'MNIST (the default)', 'fashion_mnist': 'Fashion-MNIST',
               'cpu': 'the 2-core-CPU budget of configs.apply_cpu',
               'smoke': 'seconds, a tiny net (tests)'}


def figure_config(arg, figure):
  """Base config for a paper figure: `arg` picks the dataset and the size.

  Tokens: `mnist` (default) or `fashion_mnist`; `cpu` for the CPU budget of
  `apply_cpu`; `smoke` for seconds. Without `cpu`/`smoke`: the paper's LeNets++ and the
  Caffe solver (10k steps of 128) on a 50K/10K split.
  """
  tokens = parse_arg(arg, FIGURE_ARGS)
  c = digits_config()
  c.figure = figure
  c.data.name = 'fashion_mnist' if 'fashion_mnist' in tokens else 'mnist'
  c.data.num_train = 50_000  # ECCV16's 50K/10K split (the bundled digits are fewer)
  if 'cpu' in tokens:
    apply_cpu(c)
  if 'smoke' in tokens:
    apply_smoke(c)
  return c


def apply_smoke(c):
  """Shrinks a config to seconds of CPU time, keeping its grid (for tests)."""
  c.num_steps = 20
  c.log_every = 10
  c.batch_size = 32
  c.data.num_train = 512
  c.data.num_test = 256
  c.evals.verification.pairs = 200
  # One process: starting a pinned process per core costs more than a smoke run trains.
  c.parallel.local_processes = 1
  if c.model.name == 'lenets_pp':
    c.model.channels = (4, 8, 8)
  return c


def json_diff(old, new, prefix=''):
  """'a.b: 1 -> 2, ...' for the leaves that differ between two config dicts."""
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      diff = json_diff(a, b, f'{prefix}{key}.')
      if diff:
        diffs.append(diff)
    elif a != b:
      diffs.append(f'{prefix}{key}: {a!r} -> {b!r}')
  return ', '.join(diffs)
