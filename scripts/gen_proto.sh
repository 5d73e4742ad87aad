#!/usr/bin/env bash
# Regenerate the Python stubs for proto/ into seguro/proto/, with a copy of each .proto beside them so the
# wheel ships it (pyproject.toml's package-data). All committed; a test fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${1:-seguro/proto}"
mkdir -p "$OUT"
"$PY" -m grpc_tools.protoc -Iproto --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    proto/seguro/v1/replication.proto
# The wheel ships the .proto as package data through seguro/proto/seguro/v1/replication.proto, a committed
# symlink to proto/ (one source; a wheel build copies its content).
# Make the generated imports package-relative: seguro/proto/seguro/v1/...
touch "$OUT/__init__.py" "$OUT/seguro/__init__.py" "$OUT/seguro/v1/__init__.py"
sed -i 's/^from seguro\.v1 import/from seguro.proto.seguro.v1 import/' "$OUT/seguro/v1/replication_pb2_grpc.py"
