# Sourced by the bench scripts (not run): strict mode, the repository
# root as the working directory, and the settings they share.
#   BENCH_WORK  the work directory (default /var/tmp/ostree-mount-bench)
#   BENCH_RUNS  hyperfine runs (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/bin/ostree-mount
W=${BENCH_WORK:-/var/tmp/ostree-mount-bench}
RUNS=${BENCH_RUNS:-5}
OUT=$W/out
