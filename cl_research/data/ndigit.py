"""n-digit MNIST (google-research's n-digit-mnist protocol, "toy examples for face
embedding"): each image is the horizontal concatenation of n MNIST digit images
(28 x 28n) spelling a number in [0, 10^n) with leading zeros; the number is the class.

The `number` domain gap: a seeded 70% of the numbers are training classes, the rest
unseen. As google's generator does, each (number, position) draws its digit images
without replacement, so no digit image repeats within a position of a number, and every
number of a split gets the same number of images. Four splits, each from its own seeded
stream (so one split does not change when another's size does) and from disjoint pools
of MNIST digit images:

  train        training numbers   MNIST training digits minus the validation pool
  validation   training numbers   a seeded, digit-stratified pool of MNIST training
                                  digits reserved out of every training image: model
                                  selection never sees a test digit or a trained one
  test         unseen numbers     MNIST test digits (google's `test_unseen`)
               training numbers   MNIST test digits (`test_seen`)

This is the protocol with this project's own seeded generator, not google's stored index
arrays: the same recipe, not the same sample.
"""

import numpy as np

SEEN_FRACTION = 0.7
MIN_PER_NUMBER = 100  # the protocol's floor of images per number
# the streams of the splits: rng = default_rng([seed, num_digits, STREAM])
_STREAMS = {'order': 0, 'pool': 1, 'train': 2, 'validation': 3, 'test_seen': 4,
            'test_unseen': 5}


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


def compose(digit_images_NxHxWxC, digit_labels_N, pool_P, numbers_M, per_number, num_digits,
            rng):
  """(images, labels): `per_number` images of each number of `numbers_M`, in number
  order. Each (number, position) draws `per_number` distinct digit images of its digit
  from `pool_P` (indices into the digit images) with `rng`. Raises ValueError where a
  digit has fewer images in the pool than `per_number`."""
  pool_P = np.asarray(pool_P)
  by_digit = [pool_P[digit_labels_N[pool_P] == d] for d in range(10)]
  short = min(range(10), key=lambda d: len(by_digit[d]))
  if len(by_digit[short]) < per_number:
    raise ValueError(f'{per_number} images per number need {per_number} distinct images of '
                     f'each digit; the pool has {len(by_digit[short])} of digit {short}')
  numbers_M = np.asarray(numbers_M)
  chosen = np.empty((len(numbers_M), per_number, num_digits), np.int64)
  for m, digits in enumerate(digits_of(numbers_M, num_digits)):
    for position, d in enumerate(digits):
      chosen[m, :, position] = rng.choice(by_digit[d], size=per_number, replace=False)
  chosen = chosen.reshape(-1, num_digits)
  parts = digit_images_NxHxWxC[chosen]  # N x n x H x W x C
  images = np.concatenate([parts[:, i] for i in range(num_digits)], axis=2)
  return images, np.repeat(numbers_M, per_number).astype(np.int32)


def validation_pool(train_labels_N, size, rng):
  """(validation pool, training pool): a digit-stratified `size` of the MNIST training
  digits' indices drawn with `rng`, and the rest; both sorted."""
  labels = np.asarray(train_labels_N)
  reserved = []
  for d in range(10):
    members = np.flatnonzero(labels == d)
    take = int(round(size * len(members) / len(labels)))
    reserved.append(rng.permutation(members)[:take])
  reserved = np.sort(np.concatenate(reserved))
  return reserved, np.setdiff1d(np.arange(len(labels)), reserved)


def per_number(total, numbers):
  """Images per number of a split: `total` shared out, at least MIN_PER_NUMBER."""
  return max(MIN_PER_NUMBER, total // max(numbers, 1))


def make(train_images, train_labels, test_images, test_labels, num_digits, seed=0,
         train_total=100_000, test_total=10_000, validation_total=10_000,
         validation_digits=10_000):
  """The n-digit dataset from MNIST's splits, a dict with
    train        (images, labels) of the training numbers, shuffled
    validation   (images, labels) of the training numbers (`validation_total` in all)
    test         (images, labels): `test_total` of the unseen numbers, then
                 `test_total` of the training numbers
    seen, unseen the training and the unseen numbers
    pools        MNIST indices each split drew from: train and validation (into MNIST's
                 training split, disjoint), test (into its test split)
  Images per number: each split's total divided by its numbers, at least
  MIN_PER_NUMBER. The same arguments give the same arrays; each split has its own
  stream, so changing one total changes no other split."""
  seen, unseen = split_numbers(num_digits, seed)
  stream = lambda name: np.random.default_rng([seed, num_digits, _STREAMS[name]])
  reserved, training = validation_pool(train_labels, validation_digits, stream('pool'))
  test_pool = np.arange(len(test_labels))
  build = lambda name, images, labels, pool, numbers, total: compose(
      images, labels, pool, numbers, per_number(total, len(numbers)), num_digits,
      stream(name))
  train = build('train', train_images, train_labels, training, seen, train_total)
  validation = build('validation', train_images, train_labels, reserved, seen,
                     validation_total)
  test_unseen = build('test_unseen', test_images, test_labels, test_pool, unseen, test_total)
  test_seen = build('test_seen', test_images, test_labels, test_pool, seen, test_total)
  order = stream('order').permutation(len(train[1]))
  return {'train': (train[0][order], train[1][order]), 'validation': validation,
          'test': (np.concatenate([test_unseen[0], test_seen[0]]),
                   np.concatenate([test_unseen[1], test_seen[1]])),
          'seen': tuple(int(n) for n in seen), 'unseen': tuple(int(n) for n in unseen),
          'pools': {'train': training, 'validation': reserved, 'test': test_pool}}
