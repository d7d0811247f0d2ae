"""What the docs pages share: comparisons (comparisons.csv rows or
`statistics.paired_comparison` dicts) as table cells and sentences.

A page never counts verdicts; it names, for each verdict, the settings it holds for, and
says what the comparisons could have detected (the minimum detectable effect)."""

import argparse
import math
import os
import shutil

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO_STATISTICS = '`cl_research/evaluation/statistics.py`'
VERDICTS = ('higher', 'lower', 'equivalent', 'inconclusive', 'n/a')


def number(value):
  """A float from a CSV cell or a float ('' is NaN)."""
  if value in ('', None):
    return math.nan
  return float(value)


def signed(value, scale, digits):
  value = number(value)
  return 'n/a' if math.isnan(value) else f'{scale * value:+.{digits}g}'


def mean_cell(row, key, scale=1, spec='.1f'):
  """'97.6 [97.3, 97.9]': a summary_by_setting.csv mean and its 95% interval (the mean
  alone where there is no interval, 'n/a' where there is no mean)."""
  mean, low, high = (scale * number(row[f'{key}_{s}']) for s in ('mean', 'ci95_low',
                                                                  'ci95_high'))
  if math.isnan(mean):
    return 'n/a'
  if math.isnan(low):
    return format(mean, spec)
  return f'{mean:{spec}} [{low:{spec}}, {high:{spec}}]'


def cell(c, scale=1, digits=3):
  """'+1.25 [+0.84, +1.66] higher': the mean difference, its 95% interval and the
  verdict; only the difference and 'n/a' where there is no interval."""
  interval = (f" [{signed(c['ci95_low'], scale, digits)}, "
              f"{signed(c['ci95_high'], scale, digits)}]" if c['verdict'] != 'n/a' else '')
  if math.isnan(number(c['mean_diff'])):
    return 'n/a'
  return f"{signed(c['mean_diff'], scale, digits)}{interval} {c['verdict']}"


def mde_range(comparisons, scale=1):
  """'1.2 to 7.9': the smallest and largest minimum detectable effect of `comparisons`
  (in the units of `scale`); one number where they agree."""
  values = [abs(scale * number(c['mde'])) for c in comparisons
            if not math.isnan(number(c['mde']))]
  if not values:
    return 'not computable'
  low, high = f'{min(values):.2g}', f'{max(values):.2g}'
  return low if low == high else f'{low} to {high}'


def by_verdict(labelled):
  """'higher for a, b; inconclusive for c': [(label, comparison)] grouped by verdict."""
  verdicts = {c['verdict'] for _, c in labelled}
  if len(verdicts) == 1 and len(labelled) > 2:
    return f'{verdicts.pop()} for all {len(labelled)} compared'
  parts = []
  for v in VERDICTS:
    names = [label for label, c in labelled if c['verdict'] == v]
    if names:
      parts.append(f"{v} for {', '.join(names)}")
  return '; '.join(parts)


def how_to_read(n_seeds, family_size, margin_text):
  """The paragraph every comparison page opens its comparisons with."""
  return (
      f"Each comparison pairs runs by seed ({n_seeds} seeds) and gives the mean difference "
      f"[95% Student-t interval] and a verdict ({REPO_STATISTICS}): `higher` or `lower` when "
      f"the paired t-test's p-value, Holm-adjusted over the page's family of {family_size} "
      f"comparisons, is below 0.05; `equivalent` when instead the difference lies within "
      f"{margin_text} (two one-sided tests, Holm-adjusted); `inconclusive` when neither "
      "holds, which means the runs cannot tell, not that there is no effect; `n/a` where "
      "fewer than two pairs finished or the differences do not vary. The intervals are each "
      "comparison's own (not adjusted), so an interval that excludes 0 can still carry "
      "`inconclusive`. The minimum detectable "
      "effect (MDE) is the difference a comparison would find 4 times in 5 at the observed "
      "seed-to-seed spread, before the correction.")


def page_args(doc):
  """(args, extra) of a page script whose module docstring is `doc`: `--skip-training`
  parsed, every other argument left for the training command."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[2])
  parser.add_argument('--skip-training', action='store_true')
  return parser.parse_known_args()


def machine(workdir):
  """The machine a workdir's runs used, as its metadata.json records it (numbers move
  across CPU types, so every page names it)."""
  import json  # pylint: disable=import-outside-toplevel
  try:
    with open(os.path.join(workdir, 'metadata.json')) as f:
      return json.load(f).get('machine') or '2 CPU cores (the CPU type was not recorded)'
  except OSError:
    return '2 CPU cores (no metadata.json)'


def copy_figures(workdir, names, prefix, docs=DOCS):
  """Copies the plots `names` of `workdir` to docs/figures/<prefix>_<name>."""
  figures = os.path.join(docs, 'figures')
  os.makedirs(figures, exist_ok=True)
  for name in names:
    shutil.copy(os.path.join(workdir, name), os.path.join(figures, f'{prefix}_{name}'))
