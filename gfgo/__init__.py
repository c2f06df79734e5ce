"""GFGo: call registered functions by name, in-process (the seed's execution facade).

from gfgo import GFGo
gfgo = GFGo("packages")                       # or a Registry, or an imported package
gfgo.call("Base.inverse_time_str", time_str="2024-02-15 11:11:11", bias_hours=-8)
GFGo._exe_func_kwargs(global_func=funcs, pack_func="Base.to_pickle", kwargs={...})  # seed form
"""

from gfgo.facade import GFGo, get_func_by_para
from globalfunc.resolve import Resolver

__all__ = ["GFGo", "Resolver", "get_func_by_para"]
