"""n-digit MNIST: disjoint numbers, images that spell their number from the right MNIST
split, deterministic generation."""

import numpy as np
import pytest

from cl_research.data import ndigit


def fake_mnist(n, offset):
  """Digit images whose every pixel encodes (split offset + index): a composed image
  can be traced back to the digits it was built from."""
  labels = np.arange(n) % 10
  ids = offset + np.arange(n)
  images = np.broadcast_to(ids[:, None, None, None], (n, 28, 28, 1)).astype(np.int64)
  return images, labels


def test_numbers_split_70_30_disjoint_and_seeded():
  seen, unseen = ndigit.split_numbers(2, seed=0)
  assert len(seen) == 70 and len(unseen) == 30 and not set(seen) & set(unseen)
  assert set(seen) | set(unseen) == set(range(100))
  again, _ = ndigit.split_numbers(2, seed=0)
  np.testing.assert_array_equal(seen, again)
  assert not np.array_equal(seen, ndigit.split_numbers(2, seed=1)[0])
  assert len(ndigit.split_numbers(3, seed=0)[0]) == 700


def test_images_spell_their_number_from_the_right_split_and_repeat():
  train = fake_mnist(600, 0)
  test = fake_mnist(300, 10_000)
  out = ndigit.make(*train, *test, num_digits=2, seed=3, train_total=7000, test_total=1000)
  images, labels = out['train']
  assert images.shape == (70 * 100, 28, 56, 1)
  assert set(labels.tolist()) == set(out['seen'])
  assert np.all(np.bincount(labels, minlength=100)[list(out['seen'])] == 100)
  for image, number in zip(images[:200], labels[:200]):
    left, right = image[0, 0, 0], image[0, 28, 0]  # the digit images' ids
    assert left < 10_000 and right < 10_000  # training digits only
    assert (train[1][left], train[1][right]) == (number // 10, number % 10)
  test_images, test_labels = out['test']
  assert set(test_labels.tolist()) == set(range(100))  # seen and unseen numbers
  ids = test_images[:, 0, ::28, 0]
  assert np.all(ids >= 10_000)  # test digits only
  np.testing.assert_array_equal(test[1][ids - 10_000], ndigit.digits_of(test_labels, 2))
  again = ndigit.make(*train, *test, num_digits=2, seed=3, train_total=7000, test_total=1000)
  np.testing.assert_array_equal(again['train'][0], images)
  np.testing.assert_array_equal(again['test'][1], test_labels)


def test_class_disjoint_splits_partition_the_training_classes():
  from cl_research.data import splits  # pylint: disable=import-outside-toplevel
  seen, unseen = ndigit.split_numbers(2, seed=0)
  split = splits.make(seen, unseen, num_folds=4, seed=1)
  assert sorted(c for f in split.folds for c in f) == sorted(split.train)
  assert {len(f) for f in split.folds} <= {17, 18} and not set(split.train) & set(split.test)
  trained, scored = split.fold(2)
  assert set(trained) | set(scored) == set(split.train) and not set(trained) & set(scored)
  assert split == splits.make(seen, unseen, num_folds=4, seed=1)  # seeded
  assert splits.halves(196) == (tuple(range(98)), tuple(range(98, 196)))
  with pytest.raises(ValueError, match='overlap'):
    splits.make((1, 2, 3), (3, 4), 2, 0)
  with pytest.raises(ValueError, match=r'num_folds=5 must be in \[2, 3\]'):
    splits.make((1, 2, 3), (4,), 5, 0)
