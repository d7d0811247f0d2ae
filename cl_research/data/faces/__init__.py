"""Face data: insightface's RecordIO packs, image folders, tfds identity datasets,
verification packs and LFW pairs, and a generated pack for offline tests.

Every training source is random access (`__len__`, `__getitem__ -> {'image': HxWx3
uint8, 'label': int}`, `num_classes`), what `cl_research.data.stream` streams with Grain.
Readers raise `FaceDataError` naming the file and the fault. The formats: the modules'
docstrings and docs/faces.md.
"""

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
