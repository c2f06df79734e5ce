"""The catalog's not-found message: neutral by default, the surface's own hint when given."""

from __future__ import annotations

import pytest

from globalfunc.catalog import Catalog
from globalfunc.errors import FunctionNotFound
from globalfunc.registry import Registry


def test_the_default_hint_names_every_surface_and_a_given_one_replaces_it() -> None:
    with Registry.open("sqlite://:memory:", branch="main") as registry:
        with pytest.raises(FunctionNotFound) as default:
            Catalog(registry).lookup("NoSuch.func")
        assert default.value.message == (
            "no registered function 'NoSuch.func' on branch 'main'; "
            "list the registered ones with `gf ls` or GET /functions"
        )
        with pytest.raises(FunctionNotFound) as own:
            Catalog(registry, hint="see GET /functions").lookup("NoSuch.func")
        assert own.value.message.endswith("on branch 'main'; see GET /functions")
        assert own.value.http_status == 404
