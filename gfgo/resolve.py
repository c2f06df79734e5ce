"""Compatibility re-export: the resolver lives in the core as :mod:`globalfunc.resolve`."""

from globalfunc.resolve import Resolver, Root, default_cache_dir

__all__ = ["Resolver", "Root", "default_cache_dir"]
