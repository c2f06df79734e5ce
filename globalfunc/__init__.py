"""GlobalFunc: share, version, find and serve small Python functions.

The core library: names (:mod:`globalfunc.naming`), scanning (:mod:`globalfunc.scan`),
records, storage backends, the :class:`~globalfunc.registry.Registry` and the git
:class:`~globalfunc.workspace.Workspace`. The notebook facades live in ``gfbase`` and
``gfgo``; the servers in ``server``.
"""

__version__ = "0.1.0"
