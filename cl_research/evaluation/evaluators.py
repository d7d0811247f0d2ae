"""Evaluators named in `config.evals`, in big_vision's style.

Each entry of `config.evals` is `NAME: {type: TYPE, ...settings}`, TYPE one of
`EVALUATORS`. An evaluator declares the metric keys it writes (`keys`), checks its
settings (`validate`, one `ConfigError` naming the field) and computes its numbers.
The summary's metric columns are the union of the keys of a config's evaluators
(`metric_keys`), defined here once.

The digits evaluators score a finished run's features (`FinishedFeatures`):
  clustering  accuracy, intra/inter (also of the directions), k-NN accuracy, silhouette
  pairs       LFW-style verification pairs from the test split (held-out classes only
              where there are some), cosine and Euclidean
  openset     open-set identification: enrolled held-out classes against unknown ones
              (held out and not enrolled) and, in its own column, against the trained
              classes (runs without held-out classes have none)
  retrieval   MAP@R, R-precision, precision@1 of the held-out classes (metric learning's
              retrieval protocol)
The faces task scores validation packs during training:
  face_pairs  insightface's or ECCV16's protocol on each pack, every `every` steps;
              its keys are `<pack>_<metric>`, named after the packs. VAL (TAR) at FAR
              1e-3 is left empty where the pack's negatives cannot estimate it
              (`verification.estimable`); `<pack>_val_negatives` says how many there were.
"""

import dataclasses

import numpy as np

from cl_research import errors
from cl_research.evaluation import clustering
from cl_research.evaluation import openset
from cl_research.evaluation import retrieval
from cl_research.evaluation import verification


@dataclasses.dataclass(frozen=True)
class FinishedFeatures:
  """A finished digits run's features: both splits, their labels and logits; the classes
  held out of its training (open set)."""
  train_features: np.ndarray
  train_labels: np.ndarray
  train_logits: np.ndarray
  test_features: np.ndarray
  test_labels: np.ndarray
  test_logits: np.ndarray
  num_classes: int
  holdout_classes: tuple

  @property
  def seen(self):
    """The test examples of classes seen in training."""
    return ~np.isin(self.test_labels, self.holdout_classes)


class Clustering:
  """Accuracy, clustering and nearest neighbours of the classes seen in training."""
  settings = ('knn_k', 'silhouette_samples')

  def keys(self, settings):
    del settings
    return tuple(f'{split}_{k}' for split in ('train', 'test') for k in (
        'accuracy', 'intra', 'inter', 'intra_inter', 'angular_intra_inter')) + (
            'test_knn_accuracy', 'test_silhouette')

  def validate(self, name, settings, points):
    del points
    errors.check(settings.knn_k >= 1, f'evals.{name}.knn_k={settings.knn_k!r} must be >= 1')
    errors.check(settings.silhouette_samples >= 2, f'evals.{name}.silhouette_samples='
                 f'{settings.silhouette_samples!r} must be >= 2')

  def __call__(self, settings, f):
    result = {}
    for split, mask in (('train', slice(None)), ('test', f.seen)):
      feats = getattr(f, f'{split}_features')[mask]
      labels = getattr(f, f'{split}_labels')[mask]
      result[f'{split}_accuracy'] = clustering.accuracy(getattr(f, f'{split}_logits')[mask],
                                                        labels)
      for key, value in clustering.clustering(feats, labels, f.num_classes).items():
        result[f'{split}_{key}'] = value
      result[f'{split}_angular_intra_inter'] = clustering.clustering(
          clustering.unit_vectors(feats), labels, f.num_classes)['intra_inter']
    result['test_knn_accuracy'] = clustering.knn_accuracy(
        f.train_features, f.train_labels, f.test_features[f.seen], f.test_labels[f.seen],
        k=settings.knn_k)
    result['test_silhouette'] = clustering.silhouette(
        f.test_features[f.seen], f.test_labels[f.seen], settings.silhouette_samples)
    return result


class Pairs:
  """Verification on `pairs` seeded pairs of the test split (0: off)."""
  settings = ('pairs', 'seed')

  def keys(self, settings):
    del settings
    return tuple(f'verification_{m}{suffix}' for suffix in ('', '_l2') for m in (
        'accuracy', 'accuracy_std', 'auc', 'eer', 'tar_at_far_1e-2', 'tar_at_far_1e-3'))

  def validate(self, name, settings, points):
    n = settings.pairs
    errors.check(n == 0 or n >= 20,
                 f'evals.{name}.pairs={n!r} must be 0 (off) or >= 20 (10 folds)')
    for held_out in {p['holdout'] for p in points}:
      errors.check(len(set(held_out)) != 1 or not n,
                   f'held-out classes {held_out!r}: one class; open-set verification pairs '
                   f'need at least 2 held-out classes (or evals.{name}.pairs=0)')

  def __call__(self, settings, f):
    if not settings.pairs:
      return {}
    numbers, roc = verification.evaluate(
        f.test_features, f.test_labels, settings.pairs, seed=settings.seed,
        classes=f.holdout_classes or None)
    return {**numbers, 'verification_roc': roc}


class OpenSet:
  """Open-set identification of the held-out classes (`openset.identification`): the
  last `unknown_classes` of them are never enrolled and give the non-mated probes; each
  other one is enrolled with the mean of `enrolment_images` seeded images."""
  settings = ('enrolment_images', 'unknown_classes', 'fpir', 'seed')

  def keys(self, settings):
    name = openset.fpir_name(settings.fpir)
    return ('openset_rank1', f'openset_dir_at_fpir_{name}',
            f'openset_dir_at_fpir_{name}_known_unknowns', 'openset_nonmated_probes',
            'openset_nonmated_probes_known_unknowns')

  def validate(self, name, settings, points):
    errors.check(settings.enrolment_images >= 1, f'evals.{name}.enrolment_images='
                 f'{settings.enrolment_images!r} must be >= 1')
    errors.check(0 < settings.fpir < 1, f'evals.{name}.fpir={settings.fpir!r} must be in (0, 1)')
    unknown = settings.unknown_classes
    errors.check(unknown >= 1, f'evals.{name}.unknown_classes={unknown!r} must be >= 1')
    for held_out in {tuple(p['holdout']) for p in points if len(set(p['holdout'])) > 1}:
      errors.check(len(set(held_out)) >= unknown + 2,
                   f'held-out classes {held_out!r}: open-set identification needs at least '
                   f'{unknown + 2} (2 enrolled + evals.{name}.unknown_classes={unknown} never '
                   f'enrolled); hold out more classes or lower unknown_classes')

  def __call__(self, settings, f):
    if not f.holdout_classes:
      return {}
    return openset.identification(f.test_features, f.test_labels, f.holdout_classes,
                                  settings.unknown_classes, k=settings.enrolment_images,
                                  seed=settings.seed, fpir=settings.fpir)


class Retrieval:
  """MAP@R, R-precision and precision@1 (`retrieval.retrieval_metrics`) of the test
  split's held-out classes against themselves (all test classes where none are held
  out), by `metric` (cosine or euclidean)."""
  settings = ('metric',)

  def keys(self, settings):
    del settings
    return ('test_map_at_r', 'test_r_precision', 'test_precision_at_1')

  def validate(self, name, settings, points):
    del points
    errors.check_choice(settings.metric, f'evals.{name}.metric', retrieval.METRICS)

  def __call__(self, settings, f):
    keep = ~f.seen if f.holdout_classes else np.ones(len(f.test_labels), bool)
    out = retrieval.retrieval_metrics(f.test_features[keep], f.test_labels[keep],
                                      metric=settings.metric)
    return {f'test_{k}': out[k] for k in ('map_at_r', 'r_precision', 'precision_at_1')}


class FacePairs:
  """A face protocol on each validation pack, every `every` steps (0: at the end)."""
  settings = ('protocol', 'flip', 'num_folds', 'batch_size', 'every')

  def keys(self, settings):
    del settings
    return ()  # `<pack>_<metric>`: the task knows its packs

  def validate(self, name, settings, points):
    del points
    errors.check_choice(settings.flip, f'evals.{name}.flip', verification.FLIP_MODES)
    errors.check_choice(settings.protocol, f'evals.{name}.protocol', verification.PROTOCOLS)
    errors.check(settings.num_folds >= 2,
                 f'evals.{name}.num_folds={settings.num_folds!r} must be >= 2')
    errors.check(settings.every >= 0,
                 f'evals.{name}.every={settings.every!r} must be >= 0 (0: at the end)')
    errors.check(settings.batch_size >= 1,
                 f'evals.{name}.batch_size={settings.batch_size!r} must be >= 1')

  def __call__(self, settings, embed_images, val_sets):
    """{'<pack>_<metric>': value} over `val_sets` [(name, images_2NxHxWx3 uint8,
    issame_N)]; `embed_images(uint8 images) -> embeddings` runs the model."""
    out = {}
    for name, images, issame in val_sets:
      own = embed_images(images)
      flipped = embed_images(images[:, :, ::-1]) if settings.flip != 'none' else None
      embeddings = verification.with_flip(own, flipped, settings.flip)
      numbers = verification.face_pack_metrics(embeddings, issame, settings.protocol,
                                               settings.num_folds)
      if 'val_negatives' in numbers and not verification.estimable(
          1e-3, numbers['val_negatives']):
        numbers['val_at_far_1e-3'] = numbers['val_std'] = float('nan')  # empty cells
      for k, v in numbers.items():
        out[f'{name}_{k}'] = v
    return out


EVALUATORS = {'clustering': Clustering(), 'pairs': Pairs(), 'openset': OpenSet(),
              'retrieval': Retrieval(), 'face_pairs': FacePairs()}


def entries(evals_config):
  """[(name, evaluator, settings)] of `config.evals`, in the registry's order of types
  (then by name), so summary.csv's columns do not depend on how a config lists them."""
  order = list(EVALUATORS)
  return sorted(((name, EVALUATORS[settings.type], settings)
                 for name, settings in evals_config.items()),
                key=lambda e: (order.index(e[2].type), e[0]))


def validate(evals_config, allowed, points):
  """Raises ConfigError where an entry names a type outside `allowed` (what the task can
  run), misses a setting, or has one that cannot work."""
  for name, settings in evals_config.items():
    kind = settings.get('type')
    errors.check(kind in allowed, f'evals.{name}.type={kind!r} is not one of '
                 f'{", ".join(allowed)}')
    missing = [s for s in EVALUATORS[kind].settings if s not in settings]
    errors.check(not missing, f'evals.{name} ({kind}) has no {", ".join(missing)}')
    EVALUATORS[kind].validate(name, settings, points)


def metric_keys(evals_config):
  """Every metric key the evaluators of `config.evals` write, in order."""
  return tuple(k for _, evaluator, settings in entries(evals_config)
               for k in evaluator.keys(settings))


def run(evals_config, features):
  """The numbers of every evaluator of `config.evals` on a finished run's features."""
  result = {}
  for _, evaluator, settings in entries(evals_config):
    result.update(evaluator(settings, features))
  return result


def of_type(evals_config, kind):
  """The settings of the first entry of type `kind`, or None."""
  return next((s for _, _, s in entries(evals_config) if s.type == kind), None)
