#!/usr/bin/env bash
# Starts or stops the real servers the tests and benchmarks use, all on
# 127.0.0.1 with free ports and temporary data directories:
#   etcd, MinIO (HTTP), and a second MinIO serving HTTPS with a test CA.
#
#   scripts/servers.sh start [DIR]   start them; prints the environment
#                                    (also written to DIR/env, source it);
#                                    refuses a DIR whose servers still run;
#                                    a DIR kept from an earlier session is
#                                    reused; a failed start says where and
#                                    stops what it started
#   scripts/servers.sh stop DIR      stop them by PID and remove DIR
#   scripts/servers.sh purge-trash DIR
#                                    empty MinIO's trash of deleted objects
#                                    (it frees them slowly: long benchmark
#                                    sessions otherwise fill the disk)
set -Eeuo pipefail
# Set by start: a failed start stops what it started.
STARTING=
on_error() {
  echo "servers.sh: failed at line $1: $2" >&2
  if [ -n "$STARTING" ]; then
    kill_listed "$STARTING"
  fi
}
trap 'on_error $LINENO "$BASH_COMMAND"' ERR

GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
MINIO="${MINIO:-$GOBIN_DIR/minio}"
ACCESS_KEY="woodpecker"
SECRET_KEY="woodpecker-secret-key"
BUCKET="woodpecker"
REGION="us-east-1"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # URL NAME LOG [CURL_ARGS...]
  local url=$1 name=$2 log=$3; shift 3
  for _ in $(seq 1 150); do
    if curl -sf "$@" "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "servers.sh: $name did not become ready at $url; its log:" >&2
  tail -n 30 "$log" >&2 || true
  return 1
}

make_bucket() { # ENDPOINT [CURL_ARGS...]: creates the bucket, or finds it made
  local endpoint=$1; shift
  local answer
  answer=$(curl -s "$@" -X PUT --user "$ACCESS_KEY:$SECRET_KEY" \
    --aws-sigv4 "aws:amz:$REGION:s3" -w '\n%{http_code}' "$endpoint/$BUCKET")
  case "$answer" in
    *$'\n'200) ;;
    # A directory kept from an earlier start (its servers gone) holds it.
    *BucketAlreadyOwnedByYou*$'\n'409) ;;
    *) echo "servers.sh: cannot create bucket $BUCKET at $endpoint: $answer" >&2; return 1 ;;
  esac
}

make_certs() { # DIR: a test CA and a server certificate for 127.0.0.1
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=woodpecker test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/private.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 7 -extfile "$d/ext.cnf" -out "$d/public.crt" 2>/dev/null
}

start_minio() { # NAME DATA_DIR PORT [EXTRA_ARGS...]
  local name=$1 data=$2 port=$3; shift 3
  mkdir -p "$data"
  MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_REGION="$REGION" \
    "$MINIO" server --quiet --address "127.0.0.1:$port" \
    --console-address "127.0.0.1:$(free_port)" "$@" "$data" >"$DIR/$name.log" 2>&1 &
  echo $! >> "$DIR/pids"
}

# The etcd and MinIO processes of an earlier start in DIR that still run.
running_pids() {
  [ -f "$1/pids" ] || return 0
  local pid
  while read -r pid; do
    [ -n "$pid" ] && grep -qa -e etcd -e minio "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  done < "$1/pids"
  return 0
}

start() {
  DIR=${1:-$(mktemp -d /tmp/woodpecker-servers.XXXXXX)}
  mkdir -p "$DIR"
  local running
  running=$(running_pids "$DIR" | tr '\n' ' ')
  if [ -n "$running" ]; then
    # Starting again would orphan them and write an env naming new ports
    # that the servers holding DIR's data never listen on.
    echo "servers.sh: servers of an earlier start still run in $DIR (pids $running);" \
      "use its env file, or run scripts/servers.sh stop $DIR first" >&2
    exit 1
  fi
  : > "$DIR/pids"
  STARTING=$DIR
  if [ ! -x "$MINIO" ] || ! command -v etcd >/dev/null; then
    echo "servers.sh: etcd or MinIO missing; run scripts/install-deps.sh first" >&2
    exit 1
  fi
  local etcd_port peer_port minio_port tls_port
  etcd_port=$(free_port); peer_port=$(free_port)
  minio_port=$(free_port); tls_port=$(free_port)

  etcd --name woodpecker --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "woodpecker=http://127.0.0.1:$peer_port" >"$DIR/etcd.log" 2>&1 &
  echo $! >> "$DIR/pids"

  start_minio minio "$DIR/minio-data" "$minio_port"
  make_certs "$DIR/certs"
  start_minio minio-tls "$DIR/minio-tls-data" "$tls_port" --certs-dir "$DIR/certs"

  wait_for "http://127.0.0.1:$etcd_port/health" etcd "$DIR/etcd.log"
  wait_for "http://127.0.0.1:$minio_port/minio/health/live" minio "$DIR/minio.log"
  wait_for "https://127.0.0.1:$tls_port/minio/health/live" minio-tls "$DIR/minio-tls.log" \
    --cacert "$DIR/certs/ca.crt"
  make_bucket "http://127.0.0.1:$minio_port"
  make_bucket "https://127.0.0.1:$tls_port" --cacert "$DIR/certs/ca.crt"

  cat > "$DIR/env" <<ENV
export WOODPECKER_SERVERS_DIR=$DIR
export WOODPECKER_ETCD_ENDPOINTS=127.0.0.1:$etcd_port
export WOODPECKER_S3_ENDPOINT=http://127.0.0.1:$minio_port
export WOODPECKER_S3_BUCKET=$BUCKET
export WOODPECKER_S3_ACCESS_KEY=$ACCESS_KEY
export WOODPECKER_S3_SECRET_KEY=$SECRET_KEY
export WOODPECKER_S3_REGION=$REGION
export WOODPECKER_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$tls_port
export WOODPECKER_TEST_S3_TLS_CA_CERT=$DIR/certs/ca.crt
ENV
  STARTING=
  cat "$DIR/env"
  echo "# stop with: scripts/servers.sh stop $DIR" >&2
}

# Stops the processes DIR/pids lists.
kill_listed() {
  [ -f "$1/pids" ] || return 0
  local pid
  while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done < "$1/pids"
  sleep 0.5
  while read -r pid; do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done < "$1/pids"
}

stop() {
  DIR=${1:?usage: servers.sh stop DIR}
  kill_listed "$DIR"
  case "$DIR" in /tmp/*) rm -rf "$DIR" ;; esac
}

purge_trash() {
  DIR=${1:?usage: servers.sh purge-trash DIR}
  for data in "$DIR/minio-data" "$DIR/minio-tls-data"; do
    trash="$data/.minio.sys/tmp/.trash"
    [ -d "$trash" ] && find "$trash" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  done
  return 0
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  purge-trash) shift; purge_trash "$@" ;;
  *) echo "usage: $0 start [DIR] | stop DIR | purge-trash DIR" >&2; exit 2 ;;
esac
