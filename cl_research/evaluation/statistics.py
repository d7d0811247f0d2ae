"""Statistics over seeds: means with Student-t intervals, and paired comparisons that say
what they can and cannot see (scipy).

A comparison between two settings pairs their runs by seed (the same seed gives the same
initialisation and batches), so the seed-to-seed spread both share cancels. Each
comparison gives the mean difference, its 95% Student-t interval, the paired t-test's
p-value, a TOST equivalence p-value at a declared margin, the minimum detectable effect
and a verdict:
  higher / lower   the difference's Holm-adjusted p-value is below ALPHA
  equivalent       not that, and the TOST p-value (Holm-adjusted) is below ALPHA: the
                   difference lies within +-margin
  inconclusive     neither: the experiment cannot tell
  n/a              fewer than two pairs, or differences with zero spread: no interval,
                   no p-value, no verdict
p-values are Holm-adjusted over a family of comparisons (`holm`; `comparisons` makes
the family the rows of a declared set of metrics). Holm is written out here because
SciPy offers only Benjamini-Hochberg (`scipy.stats.false_discovery_control`) and the
family-wise error rate is what a verdict about each comparison needs.
"""

import math

import numpy as np
from scipy import optimize
from scipy import stats

from cl_research import errors

ALPHA = 0.05  # two-sided level of each verdict, after Holm's adjustment
POWER = 0.8  # of the minimum detectable effect
VERDICTS = ('higher', 'lower', 'equivalent', 'inconclusive', 'n/a')


def finite(values):
  return np.asarray([v for v in values if isinstance(v, (int, float)) and math.isfinite(v)],
                    float)


def mean_interval(values, confidence=0.95):
  """(mean, sample std (ddof 1), low, high) of the Student-t interval of the mean, over
  the finite values; std and interval are NaN below two values, everything for none."""
  x = finite(values)
  if len(x) == 0:
    return (math.nan,) * 4
  mean = float(x.mean())
  if len(x) == 1:
    return mean, math.nan, math.nan, math.nan
  std = float(x.std(ddof=1))
  half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * std / math.sqrt(len(x))
  return mean, std, mean - half, mean + half


def minimum_detectable_effect(sd, n, alpha=ALPHA, power=POWER):
  """The smallest true mean difference a two-sided paired t-test at `alpha` detects with
  probability `power`, for paired differences of standard deviation `sd` over `n` pairs
  (the noncentral t distribution, solved for the effect). NaN below two pairs."""
  if n < 2 or not sd > 0:
    return math.nan
  df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

  def missing_power(effect):
    nc = effect * math.sqrt(n) / sd
    # the wrong-sign tail is negligible here, and scipy's nct returns NaN far out in it
    wrong_sign = np.nan_to_num(stats.nct.cdf(-crit, df, nc))
    return stats.nct.sf(crit, df, nc) + wrong_sign - power

  high = (crit + 3) * sd / math.sqrt(n)
  while missing_power(high) < 0:
    high *= 2
  return float(optimize.brentq(missing_power, 0.0, high))


def decide(mean_diff, p_value, p_tost, alpha=ALPHA):
  """The verdict from a difference's p-value and its TOST p-value (both adjusted, if the
  comparison belongs to a family)."""
  if not math.isfinite(p_value):
    return 'n/a'
  if p_value < alpha:
    return 'higher' if mean_diff > 0 else 'lower'
  if math.isfinite(p_tost) and p_tost < alpha:
    return 'equivalent'
  return 'inconclusive'


def paired_comparison(values_N, baseline_N, margin=None):
  """`values_N - baseline_N`, paired element by element (by seed), over the pairs where
  both are finite: n, mean_diff, ci95_low, ci95_high (Student-t), p_value (paired
  t-test), p_tost (two one-sided tests of |difference| >= `margin`; NaN without a
  margin), verdict (`decide`, unadjusted: one comparison on its own), sd (of the
  differences) and mde (`minimum_detectable_effect` at the observed SD). With fewer than two pairs or
  differences that do not vary, only n and mean_diff are numbers and the verdict is
  'n/a'."""
  a, b = np.asarray(values_N, float), np.asarray(baseline_N, float)
  keep = np.isfinite(a) & np.isfinite(b)
  d = a[keep] - b[keep]
  nan = math.nan
  out = {'n': int(len(d)), 'mean_diff': float(d.mean()) if len(d) else nan,
         'ci95_low': nan, 'ci95_high': nan, 'p_value': nan, 'p_tost': nan,
         'verdict': 'n/a', 'mde': nan, 'sd': nan}
  # equal differences (up to float rounding: 0.93 - 0.92 and 0.91 - 0.90 differ in the
  # last bit) have no spread to test against
  if len(d) < 2 or np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
    return out
  _, sd, out['ci95_low'], out['ci95_high'] = mean_interval(d)
  out['sd'] = sd
  out['p_value'] = float(stats.ttest_1samp(d, 0.0).pvalue)
  if margin:
    out['p_tost'] = float(max(stats.ttest_1samp(d, -margin, alternative='greater').pvalue,
                              stats.ttest_1samp(d, margin, alternative='less').pvalue))
  out['mde'] = minimum_detectable_effect(sd, len(d))
  out['verdict'] = decide(out['mean_diff'], out['p_value'], out['p_tost'])
  return out


def holm(p_values):
  """Holm's step-down adjustment of a family of p-values (NaN entries are not members
  and stay NaN): the k-th smallest of m becomes max over j <= k of (m - j + 1) p_(j),
  capped at 1."""
  p = np.asarray(p_values, float)
  adjusted = np.full(p.shape, np.nan)
  members = np.flatnonzero(np.isfinite(p))
  order = members[np.argsort(p[members], kind='stable')]
  m = len(order)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, (m - rank) * p[i])
    adjusted[i] = min(running, 1.0)
  return adjusted


def setting_of(result, axes):
  """The values of `axes` in a run's result: its setting (every swept value but the
  seed). Lists, as JSON stores tuples, become tuples."""
  return tuple(tuple(v) if isinstance(v, list) else v for v in (result.get(a) for a in axes))


def by_setting(results, axes, metrics):
  """One row per setting: the setting's values, `n` (complete runs), `diverged` (left
  out of the statistics) and, per metric M, M_mean, M_std, M_ci95_low, M_ci95_high."""
  settings = {}
  for r in results:
    settings.setdefault(setting_of(r, axes), []).append(r)
  rows = []
  for setting, runs in settings.items():
    done = [r for r in runs if r['status'] == 'complete']
    row = {**dict(zip(axes, setting)), 'n': len(done),
           'diverged': sum(r['status'] == 'diverged' for r in runs)}
    for m in metrics:
      row[f'{m}_mean'], row[f'{m}_std'], row[f'{m}_ci95_low'], row[f'{m}_ci95_high'] = (
          mean_interval([r.get(m) for r in done]))
    rows.append(row)
  return rows


def parse_baseline(spec):
  """'lam=0' -> ('lam', 0.0); 'head=softmax' -> ('head', 'softmax')."""
  key, _, value = spec.partition('=')
  try:
    return key, float(value)
  except ValueError:
    return key, value


COMPARISON_COLUMNS = (
    'metric', 'setting', 'baseline', 'family', 'finished', 'diverged', 'baseline_finished',
    'baseline_diverged', 'excluded_pairs', 'n', 'mean_diff', 'ci95_low', 'ci95_high',
    'p_value', 'p_holm', 'margin', 'p_tost', 'p_tost_holm', 'verdict', 'mde')


def comparisons(results, axes, metrics, baseline='lam=0', label=None, resolve=None,
                margins=None):
  """Each setting against its baseline (the same setting with `baseline`'s value), paired
  by seed: rows of COMPARISON_COLUMNS but `family`, `p_holm`, `p_tost_holm` (`adjust`
  adds them). `finished` / `diverged` count each side's runs; a seed whose run diverged
  on either side is an excluded pair, counted, not compared. `label(setting dict)` names
  a setting; `resolve(point)` makes the baseline's values what its runs use (e.g. no
  margin for the softmax head); `margins` maps a metric to its equivalence margin."""
  key, value = parse_baseline(baseline)
  label = label or (lambda s: ', '.join(f'{k}={v}' for k, v in s.items()))
  resolve = resolve or (lambda point: point)
  margins = margins or {}
  runs = {}
  for r in results:
    runs.setdefault(setting_of(r, axes), {})[r['seed']] = r
  rows = []
  for setting, by_seed in runs.items():
    named = dict(zip(axes, setting))
    if named.get(key) == value:
      continue
    base_setting = setting_of(resolve({**named, key: value}), axes)
    base = runs.get(base_setting)
    if base is None or base_setting == setting:
      continue
    rows += paired_rows(by_seed, base, metrics, label(named),
                        label(dict(zip(axes, base_setting))), margins)
  return rows


def paired_rows(by_seed, base, metrics, setting, baseline, margins):
  """The rows of COMPARISON_COLUMNS but `family`, `p_holm`, `p_tost_holm` of one
  setting against one baseline: `by_seed` and `base` map a pairing key (a seed) to a
  run's result; a key whose run diverged on either side is an excluded pair, counted,
  not compared. `margins` maps a metric to its equivalence margin."""
  counts = {'finished': _count(by_seed, 'complete'), 'diverged': _count(by_seed, 'diverged'),
            'baseline_finished': _count(base, 'complete'),
            'baseline_diverged': _count(base, 'diverged')}
  both = sorted(set(by_seed) & set(base))
  paired = [s for s in both if by_seed[s]['status'] == base[s]['status'] == 'complete']
  counts['excluded_pairs'] = sum(
      'diverged' in (by_seed[s]['status'], base[s]['status']) for s in both)
  rows = []
  for m in metrics:
    c = paired_comparison([_number(by_seed[s].get(m)) for s in paired],
                          [_number(base[s].get(m)) for s in paired], margins.get(m))
    rows.append({'metric': m, 'setting': setting, 'baseline': baseline, **counts,
                 'margin': margins.get(m, math.nan), **c})
  return rows


def _count(by_seed, status):
  return sum(r['status'] == status for r in by_seed.values())


def _number(value):
  return float(value) if isinstance(value, (int, float)) else math.nan


def adjust(rows, family):
  """Holm-adjusts the rows' p-values (`p_holm`, `p_tost_holm`) and decides their verdicts
  from the adjusted values: the rows whose metric is in `family` form one family, every
  other metric's rows a family of their own. Each row's `family` column names its own."""
  groups = {}
  for i, r in enumerate(rows):
    r['family'] = 'declared' if r['metric'] in family else r['metric']
    groups.setdefault(r['family'], []).append(i)
  for members in groups.values():
    for column, adjusted in (('p_value', 'p_holm'), ('p_tost', 'p_tost_holm')):
      for i, p in zip(members, holm([rows[i][column] for i in members])):
        rows[i][adjusted] = float(p)
    for i in members:
      r = rows[i]
      r['verdict'] = decide(r['mean_diff'], r['p_holm'], r['p_tost_holm'])
  return rows


def validate(analysis, known_metrics=None):
  """Raises ConfigError where `config.analysis`'s family or margins cannot work:
  margins must be positive numbers, and (where the metrics are known before training)
  the family must name metrics the run writes (a margin of a metric it does not write
  is unused)."""
  for metric, margin in analysis.margins.items():
    errors.check(isinstance(margin, (int, float)) and margin > 0,
                 f'analysis.margins.{metric}={margin!r} must be a number > 0')
  if known_metrics is not None:
    for metric in analysis.family:
      errors.check(metric in known_metrics, f'analysis names the metric {metric!r}, which '
                   f'this run does not write; valid: {", ".join(known_metrics)}')
