"""Dense correspondence search shared by the models and the baselines (nothing here imports either)."""

from .patchmatch import nearest_neighbour_flow, patchmatch

__all__ = ["nearest_neighbour_flow", "patchmatch"]
