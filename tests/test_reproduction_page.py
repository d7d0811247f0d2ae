"""docs/regenerate.py: the page's statements come from paired comparisons over seeds, and
a run two figures share must have the same numbers in both."""

import importlib.util
import os

import numpy as np

from cl_research import configs
from cl_research.engine.tasks import digits
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    'regenerate', os.path.join(REPO, 'docs', 'regenerate.py'))
regenerate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(regenerate)


def row(lam, seed, ratio, cosine, l2, alpha=0.5):
  r = dict.fromkeys(digits.DigitsTask(configs.digits_config()).summary_columns(()), '')
  r.update(name=f'lam={lam:g}_alpha={alpha:g}_d=2_seed={seed}', lam=str(lam),
           alpha=str(alpha), seed=str(seed), status='complete', test_intra_inter=str(ratio),
           test_accuracy='0.96', verification_accuracy=str(cosine),
           verification_accuracy_l2=str(l2), final_loss='0.1')
  return r


def test_a_run_shared_by_two_figures_must_match():
  a = [row(0.0, 0, 0.07, 0.95, 0.81)]
  b = [row(0.0, 0, 0.0669, 0.949, 0.815)]
  found = regenerate.inconsistencies({'fig2': a, 'fig5': b})
  assert {(name, k) for name, _, _, k in found} >= {
      ('lam=0_alpha=0.5_d=2_seed=0', 'test_intra_inter'),
      ('lam=0_alpha=0.5_d=2_seed=0', 'verification_accuracy')}
  assert not regenerate.inconsistencies({'fig2': a, 'fig5': [dict(a[0])]})


def test_findings_are_paired_over_seeds_with_holm_adjusted_verdicts():
  fig3 = [row(lam, s, ratio + 0.001 * s + 0.0002 * (s == 1) * (lam == 0.01), 0.9, 0.9)
          for lam, ratio in ((0.001, 0.05), (0.01, 0.03)) for s in range(3)]
  fig5 = [row(0.0, s, 0.07, 0.940 + 0.01 * s, 0.80) for s in range(3)]
  # Fig. 3: -0.02 with a little spread; lambda 0.01: cosine lower by 3 pt on every seed but one (p about 0.003 alone), L2
  # higher by 10 pt; lambda 0.001: noise
  fig5 += [row(0.01, s, 0.03, 0.910 + 0.01 * s + 0.001 * (s == 2), 0.90 + 0.001 * s)
           for s in range(3)]
  fig5 += [row(0.001, s, 0.05, (0.95, 0.93, 0.97)[s], 0.80 + 0.01 * (s - 1)) for s in range(3)]
  section = {'dataset': 'MNIST', 'fig2': fig5[:3], 'fig3': fig3, 'fig5': fig5}
  compared = regenerate.page_comparisons([section])
  rows = {(kind, label): c for kind, label, c in compared['MNIST']}
  assert len(rows) == 5  # 1 step of Fig. 3, 2 lambdas x 2 scores of Fig. 5 (a)
  unadjusted = [c['p_value'] for c in rows.values()]
  holm = regenerate.analysis.holm(unadjusted)
  np.testing.assert_allclose([c['p_holm'] for c in rows.values()], holm)
  assert rows[('Fig. 3 test intra/inter', 'lambda 0.001 -> 0.01')]['verdict'] == 'lower'
  assert rows[('Fig. 5 (a) verif. L2 (pt)', 'lambda 0.01 vs 0')]['verdict'] == 'higher'
  assert rows[('Fig. 5 (a) verif. cosine (pt)', 'lambda 0.001 vs 0')]['verdict'] == 'inconclusive'
  assert all(c['verdict'] in regenerate.analysis.VERDICTS for c in rows.values())
  text = regenerate.findings(section, compared['MNIST']) + regenerate.conclusion(compared)
  assert 'over 3 seeds' in text and 'Holm-adjusted over the page' in text
  assert 'higher for lambda 0.01 vs 0' in text
