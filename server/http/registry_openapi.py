"""The OpenAPI fragment of the registry endpoints (:mod:`server.http.registry_api`).

What each ``/registry/`` operation accepts and answers, from the same limits and name
patterns the handlers check, so that the document and the server agree (the contract test
runs schemathesis over it). What it does not do: serve anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from globalfunc.record import FunctionRecord
from server.http.openapi import DESCRIPTIONS, PACKAGE_PATTERN, operation, responses, schema_ref
from server.http.registry_api import (
    BRANCH_PATTERN,
    MAX_BATCH,
    MAX_QUERY,
    MAX_SEARCH,
    NAME_PATTERN,
    TIER1_PATTERN,
)
from server.http.save_item import (
    COMMIT_PATTERN,
    MAX_DESCRIPTION,
    MAX_MTIME_NS,
    MODIFIED_PATTERN,
    SHA256_PATTERN,
)

__all__ = ["registry_openapi"]


# -- the OpenAPI fragment ---------------------------------------------------------------------
_ERROR = schema_ref("Error")
_RECORD = schema_ref("Record")
_RECORDS: dict[str, Any] = {
    "type": "object",
    "required": ["records"],
    "properties": {"records": {"type": "array", "items": _RECORD}},
}
_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One stored version, as the server computed it from the code",
    "required": ["tier1", "package", "branch", "name", "code", "sha256", "md5", "saved_at"],
    "properties": {
        "tier1": {"type": "string"},
        "package": {"type": "string"},
        "branch": {"type": "string"},
        "name": {"type": "string"},
        "code": {"type": "string"},
        "sha256": {"type": "string", "pattern": SHA256_PATTERN},
        "md5": {"type": "string"},
        "size": {"type": "integer"},
        "line_count": {"type": "integer"},
        "modified_time": {"type": "string"},
        "signature": {"type": "string"},
        "docstring": _NULLABLE_TEXT,
        "commit": _NULLABLE_TEXT,
        "saved_at": {"type": "number"},
        "deleted": {"type": "boolean"},
        "dirty": {"type": "boolean"},
    },
}
_SAVE_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["tier1", "package", "branch", "name", "code", "sha256"],
    "additionalProperties": False,
    "properties": {
        "tier1": {"type": "string", "pattern": TIER1_PATTERN},
        "package": {"type": "string", "pattern": PACKAGE_PATTERN},
        "branch": {"type": "string", "pattern": BRANCH_PATTERN},
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "code": {"type": "string", "description": "the file's text; its sha256 is checked"},
        "sha256": {"type": "string", "pattern": SHA256_PATTERN},
        "commit": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": COMMIT_PATTERN}]},
        "dirty": {"type": "boolean"},
        "modified_time": {"type": "string", "pattern": MODIFIED_PATTERN},
        "mtime_ns": {"type": "integer", "minimum": 0, "maximum": MAX_MTIME_NS - 1},
        "description": {
            "type": "string",
            "maxLength": MAX_DESCRIPTION,
            "description": "what a person said of this version; absent: the latest one's",
        },
    },
}


def _query(
    name: str, schema: dict[str, Any], required: bool = False, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, **extra}


def _codes(*codes: int) -> dict[int, str]:
    return {code: DESCRIPTIONS[code] for code in codes}


_TIER1_Q = _query(
    "tier1", {"type": "string", "pattern": TIER1_PATTERN}, description="default: the server's"
)
_KEY_PARAMS = [
    _TIER1_Q,
    _query("package", {"type": "string", "pattern": PACKAGE_PATTERN}, True),
    _query(
        "branch", {"type": "string", "pattern": BRANCH_PATTERN}, description="default: the server's"
    ),
    _query("name", {"type": "string", "pattern": NAME_PATTERN}, True),
]
_WRITE_403 = "Package not exposed; or the token may not write; or the server takes no writes"


def registry_openapi(_records: Sequence[FunctionRecord] = ()) -> dict[str, Any]:
    """The registry endpoints' paths and schemas (an ``openapi_extensions`` fragment)."""
    read = _codes(400, 401, 403, 500, 503)
    write = {**_codes(400, 401), 403: _WRITE_403, **_codes(500, 503)}
    return {
        "paths": {
            "/registry/save": {
                "post": operation(
                    "Save function versions (content-addressed: an unchanged one is a no-op)",
                    responses(
                        {
                            "type": "object",
                            "required": ["results"],
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["key", "sha256", "added"],
                                        "properties": {
                                            "key": {"type": "string"},
                                            "sha256": {"type": "string"},
                                            "added": {"type": "boolean"},
                                        },
                                    },
                                }
                            },
                        },
                        {**write, 413: DESCRIPTIONS[413], 422: "The code cannot be registered"},
                        _ERROR,
                    ),
                    body={
                        "type": "object",
                        "required": ["records"],
                        "properties": {
                            "records": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_BATCH,
                                "items": schema_ref("SaveItem"),
                            }
                        },
                    },
                    operationId="registry_save",
                    tags=["registry"],
                )
            },
            "/registry/record": {
                "get": operation(
                    "The latest live version, or the version with a given sha256",
                    responses(
                        {
                            "type": "object",
                            "required": ["record"],
                            "properties": {"record": _RECORD},
                        },
                        {**read, 404: "No such version"},
                        _ERROR,
                    ),
                    parameters=[
                        *_KEY_PARAMS,
                        _query("sha256", {"type": "string", "pattern": SHA256_PATTERN}),
                    ],
                    operationId="registry_get",
                    tags=["registry"],
                ),
                "delete": operation(
                    "Delete: append a tombstone (the history stays)",
                    responses(
                        {
                            "type": "object",
                            "required": ["deleted"],
                            "properties": {"deleted": {"type": "boolean"}},
                        },
                        write,
                        _ERROR,
                    ),
                    parameters=_KEY_PARAMS,
                    operationId="registry_delete",
                    tags=["registry"],
                ),
            },
            "/registry/history": {
                "get": operation(
                    "Every version, newest first, tombstones included",
                    responses(_RECORDS, read, _ERROR),
                    parameters=_KEY_PARAMS,
                    operationId="registry_history",
                    tags=["registry"],
                )
            },
            "/registry/list": {
                "get": operation(
                    "The latest live version of each function (of a package, on a branch)",
                    responses(_RECORDS, read, _ERROR),
                    parameters=[
                        _TIER1_Q,
                        _query("package", {"type": "string", "pattern": PACKAGE_PATTERN}),
                        _query(
                            "branch",
                            {"type": "string", "pattern": BRANCH_PATTERN},
                            description="default: every branch",
                        ),
                    ],
                    operationId="registry_list",
                    tags=["registry"],
                )
            },
            "/registry/duplicates": {
                "post": operation(
                    "Live functions with the logic of the given fingerprints (a save's check)",
                    responses(
                        {
                            "type": "object",
                            "required": ["duplicates"],
                            "properties": {
                                "duplicates": {
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Record"},
                                    },
                                }
                            },
                        },
                        read,
                        _ERROR,
                    ),
                    body={
                        "type": "object",
                        "required": ["items"],
                        "properties": {
                            "tier1": {"type": "string", "pattern": TIER1_PATTERN},
                            "items": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_BATCH,
                                "items": {
                                    "type": "object",
                                    "required": ["package", "name", "fingerprint"],
                                    "properties": {
                                        "package": {
                                            "type": "string",
                                            "pattern": PACKAGE_PATTERN,
                                        },
                                        "name": {
                                            "type": "string",
                                            "pattern": NAME_PATTERN,
                                        },
                                        "fingerprint": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 80,
                                        },
                                    },
                                },
                            },
                        },
                    },
                    operationId="registry_duplicates",
                    tags=["registry"],
                )
            },
            "/registry/search": {
                "get": operation(
                    "Live functions of a tier1 matching every word of q, best first",
                    responses(_RECORDS, read, _ERROR),
                    parameters=[
                        _TIER1_Q,
                        _query(
                            "q",
                            {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_QUERY,
                                "pattern": r"\S",
                            },
                            True,
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH, "default": 20},
                        ),
                        _query("package", {"type": "string", "pattern": PACKAGE_PATTERN}),
                        _query("branch", {"type": "string", "pattern": BRANCH_PATTERN}),
                    ],
                    operationId="registry_search",
                    tags=["registry"],
                )
            },
        },
        "components": {"schemas": {"Record": _RECORD_SCHEMA, "SaveItem": _SAVE_ITEM}},
    }
