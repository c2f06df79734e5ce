"""FunctionRecord.from_info: its fast path builds exactly what the dataclass constructor does."""

from __future__ import annotations

import dataclasses

import pytest

from globalfunc.errors import InvalidName
from globalfunc.record import FunctionInfo, FunctionRecord, Param
from tests.factories import make_record


def _info(**changes: object) -> FunctionInfo:
    record = make_record("to_pickle", doc="Save data.")
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(FunctionInfo)}
    values.update(
        mtime_ns=123,
        params=(Param("x", "positional_or_keyword", "None", "int"),),
        imports=("os",),
        is_async=True,
    )
    values.update(changes)
    return FunctionInfo(**values)  # type: ignore[arg-type]


def test_from_info_equals_the_dataclass_constructor() -> None:
    info = _info()
    fast = FunctionRecord.from_info(info, tier1="sp_Other", branch="feature/x", commit="abc")
    values = {f.name: getattr(info, f.name) for f in dataclasses.fields(FunctionInfo)}
    slow = FunctionRecord(**values, tier1="sp_Other", branch="feature/x", commit="abc")
    assert fast == slow and repr(fast) == repr(slow)
    for f in dataclasses.fields(FunctionRecord):
        assert getattr(fast, f.name) == getattr(slow, f.name), f.name
    assert fast.saved_at == 0.0 and fast.deleted is False and fast.extra == {}
    assert fast.extra is not FunctionRecord.from_info(info).extra  # a new dict each time
    assert fast.key == "sp_Other.Base_feature+x.to_pickle"


def test_from_info_records_stay_frozen() -> None:
    record = FunctionRecord.from_info(_info())
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]


def test_from_info_validates_the_names() -> None:
    with pytest.raises(InvalidName):
        FunctionRecord.from_info(_info(name="__init__"))
    with pytest.raises(InvalidName):
        FunctionRecord.from_info(_info(), branch="bad..branch")


def test_from_info_on_a_subclass_uses_its_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Tagged(FunctionRecord):
        tag: str = "t"

    record = Tagged.from_info(_info(), branch="dev")
    assert type(record) is Tagged and record.tag == "t" and record.branch == "dev"
