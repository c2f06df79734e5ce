"""GFBase: the notebook facade for developing functions (the seed's method names kept)."""

from gfbase.facade import GFBase

__all__ = ["GFBase"]
