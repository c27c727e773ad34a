#!/usr/bin/env bash
# Installs what the test suite and the local servers need, each only if
# missing: etcd and chromium (Debian packages; chromium renders the
# bench HTML report in a test), MinIO (built from its Go module, pinned),
# and the rustfmt/clippy components.
set -euo pipefail

MINIO_MODULE="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp="$GOBIN_DIR/.woodpecker-minio-version"
if [ ! -x "$GOBIN_DIR/minio" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$MINIO_MODULE" ]; then
  echo "install-deps: go install $MINIO_MODULE (a few minutes)"
  go install "$MINIO_MODULE"
  echo "$MINIO_MODULE" > "$stamp"
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
echo "install-deps: ok"
