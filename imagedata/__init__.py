"""forkpoint's data layer: real image datasets offline, fixed splits, DVC data versions.

Built-ins ("mnist", "fashion", "animals", "digits") are prepared into ``data/<name>/``
byte-identically on every machine (tracked by ``data.dvc``); user data comes as an
ImageFolder directory or a ``path,label`` CSV. See docs/data.md.
"""

from forkpoint.imagedata.loader import load_dataset, load_prepared
from forkpoint.imagedata.ops import limit_per_class, subset_classes
from forkpoint.imagedata.prepare import prepare
from forkpoint.imagedata.sources import BUILTIN_NAMES
from forkpoint.imagedata.types import ImageDataset, Split
from forkpoint.imagedata.userdata import ImbalanceWarning
from forkpoint.imagedata.versioning import dvc_add, dvc_md5, dvcfile_md5

__all__ = [
    "BUILTIN_NAMES", "ImageDataset", "ImbalanceWarning", "Split", "dvc_add", "dvc_md5", "dvcfile_md5",
    "limit_per_class", "load_dataset", "load_prepared", "prepare", "subset_classes",
]
