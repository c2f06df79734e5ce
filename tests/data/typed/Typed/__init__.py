"""Typed functions for the contract test: each accepts every value its annotations admit."""
