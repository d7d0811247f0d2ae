"""Class-disjoint splits for open-set benchmarks (the metric-learning reality check's
protocol, ../shared/spec/benchmark.md): training classes, K validation folds that
partition them, and test classes never used for training or for choosing settings.

- `halves`: the first half of the classes (in label order) train, the second half test,
  as the reality check splits CUB-200-2011, Cars196 and Stanford Online Products;
- n-digit MNIST brings its own split (`ndigit.split_numbers`, a seeded 70/30);
- `folds`: a seeded partition of the training classes into K folds of (nearly) equal
  size; trial k trains on the other K-1 folds and is scored on fold k.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClassSplit:
  """Training classes, their validation folds, and the test (unseen) classes."""
  train: tuple
  folds: tuple  # tuples of classes, a partition of `train`
  test: tuple

  def fold(self, k):
    """(classes trained on, classes scored) of validation fold k."""
    held = self.folds[k]
    return tuple(c for c in self.train if c not in held), held


def halves(num_classes):
  """(training classes, test classes): the first half and the second half in label
  order (the odd class goes to test)."""
  cut = num_classes // 2
  return tuple(range(cut)), tuple(range(cut, num_classes))


def folds(train_classes, num_folds, seed):
  """`num_folds` class-disjoint folds of `train_classes`, seeded, sizes differing by at
  most one; each fold sorted."""
  train_classes = np.asarray(train_classes)
  if not 2 <= num_folds <= len(train_classes):
    raise ValueError(f'num_folds={num_folds} must be in [2, {len(train_classes)}] (the '
                     'training classes)')
  order = np.random.default_rng(seed).permutation(train_classes)
  return tuple(tuple(sorted(int(c) for c in part)) for part in np.array_split(order, num_folds))


def make(train_classes, test_classes, num_folds, seed):
  train = tuple(sorted(int(c) for c in train_classes))
  test = tuple(sorted(int(c) for c in test_classes))
  if set(train) & set(test):
    raise ValueError(f'training and test classes overlap: {sorted(set(train) & set(test))}')
  return ClassSplit(train=train, folds=folds(train, num_folds, seed), test=test)
