#!/usr/bin/env bash
# Regenerate the Python gRPC modules from aiges.proto and plugin.proto.
# Run from anywhere: `bash server/aiges/proto/generate.sh` (uses .venv/bin/python if present).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
cd "$repo"
"$python" -m grpc_tools.protoc -I server/aiges/proto \
  --python_out=server/aiges/proto --grpc_python_out=server/aiges/proto --pyi_out=server/aiges/proto \
  server/aiges/proto/aiges.proto server/aiges/proto/plugin.proto
# protoc writes `import aiges_pb2`; make the imports package-relative so they load as
# server.aiges.proto.aiges_pb2 without touching sys.path.
sed -i -E 's/^import (aiges|plugin)_pb2 as /from . import \1_pb2 as /' \
  server/aiges/proto/aiges_pb2_grpc.py server/aiges/proto/plugin_pb2_grpc.py
