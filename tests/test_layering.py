"""The package's layers: each folder imports only the folders below it.

    base (cl_research/*.py) < core < platform < configs < data < evaluation < outputs
    < engine < launch

`cl_research.losses` and `cl_research.run` are the public names of `core.losses` and
`launch.cli` and rank with them. Nothing imports the command line, and the pure core runs
without the platform's CPU machinery (oneDNN, local processes).
"""

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, 'cl_research')
LAYERS = ('base', 'core', 'platform', 'configs', 'data', 'evaluation', 'outputs', 'engine',
          'launch')
ALIASES = {'cl_research.losses': 'core', 'cl_research.run': 'launch'}


def layer_of(module):
  """The layer of a dotted module name inside cl_research."""
  if module in ALIASES:
    return ALIASES[module]
  parts = module.split('.')
  if len(parts) > 1 and parts[1] in LAYERS:
    return parts[1]
  return 'base'


def modules():
  """(dotted name, path) of every module of the package."""
  for root, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
        yield rel.removesuffix('.__init__'), path


def imports(path, module):
  """The cl_research modules `path` imports (top level or inside functions)."""
  found = set()
  package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1] +
                        ([base] if base else []))
      found |= {base} | {f'{base}.{a.name}' for a in node.names}
  return {m for m in found if m == 'cl_research' or m.startswith('cl_research.')}


def test_every_module_is_in_a_layer_and_imports_only_below_it():
  seen = set()
  for module, path in modules():
    own = LAYERS.index(layer_of(module))
    seen.add(layer_of(module))
    for imported in imports(path, module):
      if imported == 'cl_research':
        continue
      other = LAYERS.index(layer_of(imported))
      assert other <= own, f'{module} ({LAYERS[own]}) imports {imported} ({LAYERS[other]})'
  assert seen == set(LAYERS), set(LAYERS) - seen


def test_nothing_imports_the_command_line():
  for module, path in modules():
    if layer_of(module) == 'launch' or module == 'cl_research.run':
      continue
    bad = {m for m in imports(path, module) if m.startswith(('cl_research.launch',
                                                              'cl_research.run'))}
    assert not bad, (module, bad)


def test_the_checker_sees_a_violation(tmp_path):
  path = tmp_path / 'm.py'
  path.write_text('from cl_research.engine import loop\n')
  assert 'cl_research.engine.loop' in imports(str(path), 'cl_research.core.m')
  assert LAYERS.index(layer_of('cl_research.engine.loop')) > LAYERS.index('core')


def test_the_core_runs_without_the_cpu_machinery():
  code = ('import sys; import cl_research.core.step, cl_research.losses; '
          "print(sorted(m for m in sys.modules if m.startswith('cl_research.platform')))")
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                       text=True, check=True).stdout
  assert out.strip() == '[]'


def test_the_evaluation_package_re_exports_its_public_functions():
  import cl_research.evaluation as evaluation  # pylint: disable=import-outside-toplevel
  from cl_research.evaluation import statistics  # pylint: disable=import-outside-toplevel
  from cl_research.evaluation import verification  # pylint: disable=import-outside-toplevel
  for name in evaluation.__all__:
    assert callable(getattr(evaluation, name)) or name == 'EVALUATORS', name
  assert evaluation.insightface_protocol is verification.insightface_protocol
  assert evaluation.paired_comparison is statistics.paired_comparison
  assert set(evaluation.EVALUATORS) == {'clustering', 'pairs', 'openset', 'face_pairs',
                                        'retrieval'}
  # a re-exported name never hides a submodule of the package
  for name in ('clustering', 'evaluators', 'openset', 'statistics', 'verification'):
    assert type(getattr(evaluation, name)).__name__ == 'module', name
