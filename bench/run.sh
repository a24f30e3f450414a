#!/usr/bin/env bash
# Builds the library and runs the benchmarks against dist/, as users would run it. Usage: bench/run.sh [name…]
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(memory-throughput routing amqp mqtt hub)
for name in "${names[@]}"; do
  [ -f "bench/$name.ts" ] || { echo "bench: no bench/$name.ts" >&2; exit 2; }
  node --import tsx --expose-gc "bench/$name.ts"
done
