"""Data for reference-based SR: light fields (per-view folders, Lytro mosaics, LFVideo tiles),
stereo pairs and pair lists, as Datasets of (lr, ref, hr) samples; see ``open_dataset``."""

from .datasets import LightFieldDataset, PairListDataset, StereoDataset, read_pair_list
from .io import list_images, load_image, save_image
from .lightfield import LightField, MosaicLightField, TiledLightField, ViewFolderLightField
from .open import LAYOUTS, detect_layout, open_dataset
from .samples import make_sample

__all__ = [
    "LightField",
    "ViewFolderLightField",
    "MosaicLightField",
    "TiledLightField",
    "LightFieldDataset",
    "StereoDataset",
    "PairListDataset",
    "read_pair_list",
    "open_dataset",
    "detect_layout",
    "LAYOUTS",
    "make_sample",
    "load_image",
    "save_image",
    "list_images",
]
