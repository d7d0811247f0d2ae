"""Face data: insightface's RecordIO packs, image folders, tfds identity datasets,
verification packs and LFW pairs, and a generated pack for offline tests.

Every training source is random access (`__len__`, `__getitem__ -> {'image': HxWx3
uint8, 'label': int}`, `num_classes`), what `cl_research.data.stream` streams with Grain.
Readers raise `FaceDataError` naming the file and the fault. The formats: the modules'
docstrings and docs/faces.md.
"""

from cl_research import errors as config_errors
from cl_research.data.faces.errors import FaceDataError
from cl_research.data.faces.packs import load_bin
from cl_research.data.faces.packs import read_lfw_pairs
from cl_research.data.faces.packs import resize
from cl_research.data.faces.packs import write_bin
from cl_research.data.faces.recordio import RecordIOSource
from cl_research.data.faces.recordio import write_pack
from cl_research.data.faces.sources import ImageFolderSource
from cl_research.data.faces.sources import TfdsIdentitySource

__all__ = ('FaceDataError', 'ImageFolderSource', 'RecordIOSource', 'TfdsIdentitySource',
           'load_bin', 'read_lfw_pairs', 'resize', 'write_bin', 'write_pack')

SOURCES = ('synthetic', 'rec', 'folder', 'tfds')  # data.face_source


def validate(data_config):
  """Raises ConfigError where `config.data` of a face experiment cannot work; a missing
  or broken file is `FaceDataError`, raised when the source opens."""
  d = data_config
  config_errors.check_choice(d.face_source, 'data.face_source', SOURCES)
  config_errors.check(not d.lfw_pairs or bool(d.lfw_dir),
               'data.lfw_pairs is set but data.lfw_dir is empty: pairs.txt names images in it')
  config_errors.check(d.workers >= 0, f'data.workers={d.workers!r} must be >= 0 (0: threads)')
  config_errors.check(len(d.val_targets) > 0 or bool(d.lfw_pairs), 'data.val_targets is empty and '
               'no data.lfw_pairs: a face run needs verification pairs')
