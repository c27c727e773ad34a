#!/usr/bin/env bash
# The full test suite: installs what is missing, checks formatting and
# lints, starts etcd and MinIO on 127.0.0.1, runs every test against them,
# and stops the servers again (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

servers_dir=$(mktemp -d /tmp/woodpecker-servers.XXXXXX)
trap 'scripts/servers.sh stop "$servers_dir"' EXIT
scripts/servers.sh start "$servers_dir" >/dev/null
# shellcheck disable=SC1091
source "$servers_dir/env"

cargo test --workspace
