"""n-digit MNIST (google-research's n-digit-mnist protocol, "toy examples for face
embedding"): each image is the horizontal concatenation of n MNIST digit images
(28 x 28n) spelling a number in [0, 10^n) with leading zeros; the number is the class.

The `number` domain gap: a seeded 70% of the numbers are training classes, the rest
unseen. Training images are built from MNIST's training digits and test images from its
test digits, so no digit image is shared across splits; every number gets the same
number of images. This is the protocol with this project's own seeded generator, not
google's stored index arrays: the same recipe, not the same sample.
"""

import numpy as np

SEEN_FRACTION = 0.7
MIN_PER_NUMBER = 100  # the protocol's floor of images per number


def split_numbers(num_digits, seed, seen_fraction=SEEN_FRACTION):
  """(training numbers, unseen numbers), both sorted: a seeded `seen_fraction` of the
  10^n numbers and the rest."""
  count = 10 ** num_digits
  order = np.random.default_rng(seed).permutation(count)
  cut = int(round(seen_fraction * count))
  return np.sort(order[:cut]), np.sort(order[cut:])


def digits_of(numbers_N, num_digits):
  """N x n digits, most significant first: 7 -> (0, 7) for n = 2."""
  numbers_N = np.asarray(numbers_N)
  return np.stack([(numbers_N // 10 ** (num_digits - 1 - i)) % 10
                   for i in range(num_digits)], axis=1)


def compose(digit_images_NxHxWxC, digit_labels_N, numbers_M, per_number, num_digits, rng):
  """(images, labels): `per_number` images of each number of `numbers_M`, each position
  a digit image of that digit drawn with `rng` from `digit_images_NxHxWxC`."""
  by_digit = [np.flatnonzero(digit_labels_N == d) for d in range(10)]
  labels = np.repeat(np.asarray(numbers_M), per_number)
  digits = digits_of(labels, num_digits)
  chosen = np.empty(digits.shape, np.int64)
  for d in range(10):
    where = digits == d
    chosen[where] = rng.choice(by_digit[d], size=int(where.sum()))
  parts = digit_images_NxHxWxC[chosen]  # N x n x H x W x C
  images = np.concatenate([parts[:, i] for i in range(num_digits)], axis=2)
  return images, labels.astype(np.int32)


def make(train_images, train_labels, test_images, test_labels, num_digits, seed=0,
         train_total=100_000, test_total=10_000):
  """The n-digit dataset from MNIST's splits: a dict with train (images, labels) of the
  training numbers from training digits; test (images, labels) of every number from
  test digits; the training and unseen numbers. Images per number: the totals divided
  by the numbers, at least MIN_PER_NUMBER. The same arguments give the same arrays."""
  seen, unseen = split_numbers(num_digits, seed)
  count = 10 ** num_digits
  train_per = max(MIN_PER_NUMBER, train_total // len(seen))
  test_per = max(MIN_PER_NUMBER, test_total // count)
  rng = np.random.default_rng([seed, num_digits])
  train = compose(train_images, train_labels, seen, train_per, num_digits, rng)
  test = compose(test_images, test_labels, np.arange(count), test_per, num_digits, rng)
  order = rng.permutation(len(train[1]))
  return {'train': (train[0][order], train[1][order]), 'test': test,
          'seen': tuple(int(n) for n in seen), 'unseen': tuple(int(n) for n in unseen)}
