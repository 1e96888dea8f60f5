#!/usr/bin/env bash
# Starts a throwaway OCI registry (Debian's docker-registry) on 127.0.0.1 and pushes the test
# images to it.
#
#   tests/registry/start.sh DIR
#
# DIR is created; the registry keeps its data in DIR/data and logs (with an access log) to
# DIR/registry.log. On success DIR/port and DIR/pid are written and "PORT PID" is printed.
# Stop it by its pid (the caller's job: the registry outlives this script).
#
# Environment:
#   REGISTRY_IMAGES=DIR   where the OCI layouts are built (default DIR/oci). Reused when it
#                         already holds a finished build, so test binaries build them once.
#   REGISTRY_HTPASSWD=F   turn on htpasswd auth with this file (bcrypt entries: the registry
#                         accepts nothing else).
#   REGISTRY_CREDS=U:P    credentials skopeo pushes with (needed with REGISTRY_HTPASSWD).
#   REGISTRY_PUSH="a b"   repositories the busybox image is pushed as (default "busybox").
#   REGISTRY_TLS=1        serve HTTPS with a certificate for 127.0.0.1 from a fresh CA;
#                         the CA is DIR/tls/ca.pem (needs openssl).
#   REGISTRY_OWNER=PID    stop the registry when this process is gone (polled every 0.5 s),
#                         so a test binary that dies without cleaning up leaves nothing.
#
# Images (tags in the OCI layout → what is pushed):
#   busybox   busybox-static with applet links, cmd ["sh"]     → each of REGISTRY_PUSH:latest
#   layered   busybox + a layer adding data/{gone,keep}.txt, opaque/{old1,sub/old2}
#             + a hand-made layer with data/.wh.gone.txt, opaque/.wh..wh..opq, opaque/new
#                                                               → layered:latest
#   multi     index: linux/<this host> and linux/s390x         → multi:latest
#   foreign   index: linux/s390x and linux/ppc64le only        → foreign:latest
#
# Needs: docker-registry, umoci, skopeo, busybox-static, jq, curl, tar.
set -euo pipefail

dir=${1:?usage: start.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
images=${REGISTRY_IMAGES:-$dir/oci}
push_as=${REGISTRY_PUSH:-busybox}

for tool in docker-registry umoci skopeo jq curl tar; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool is not installed" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] || { echo "start.sh: busybox (busybox-static) is not installed" >&2; exit 1; }

host_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l|armv6l) echo arm ;;
    ppc64le) echo ppc64le ;;
    *) uname -m ;;
  esac
}

# Writes an image index over the busybox manifest for the given platforms into layout $1 as
# tag $2.
add_index() {
  local layout=$1 tag=$2; shift 2
  local manifest digest size entries="" index hex
  manifest=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "busybox")' "$layout/index.json")
  digest=$(jq -r .digest <<<"$manifest")
  size=$(jq -r .size <<<"$manifest")
  for platform in "$@"; do
    entries+="${entries:+,}{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$digest\",\"size\":$size,\"platform\":{\"os\":\"linux\",\"architecture\":\"$platform\"}}"
  done
  index="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[$entries]}"
  printf '%s' "$index" >"$layout/tmp-index"
  hex=$(sha256sum "$layout/tmp-index" | cut -d' ' -f1)
  mv "$layout/tmp-index" "$layout/blobs/sha256/$hex"
  jq -c --arg d "sha256:$hex" --argjson s "${#index}" --arg t "$tag" \
    '.manifests += [{"mediaType":"application/vnd.oci.image.index.v1+json","digest":$d,"size":$s,"annotations":{"org.opencontainers.image.ref.name":$t}}]' \
    "$layout/index.json" >"$layout/index.json.new"
  mv "$layout/index.json.new" "$layout/index.json"
}

build_images() {
  local work layout
  work=$(mktemp -d "$images.build.XXXXXX")
  layout=$work/layout
  umoci init --layout "$layout"
  umoci new --image "$layout:busybox"
  umoci unpack --image "$layout:busybox" "$work/b1" >/dev/null
  mkdir -p "$work/b1/rootfs/bin" "$work/b1/rootfs/tmp" "$work/b1/rootfs/etc"
  cp "$busybox" "$work/b1/rootfs/bin/busybox"
  for applet in sh ash httpd echo cat ls sleep dd head tail true false env mkdir rm wc id grep; do
    ln -sf busybox "$work/b1/rootfs/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$work/b1/rootfs/etc/passwd"
  umoci repack --image "$layout:busybox" "$work/b1"
  umoci config --image "$layout:busybox" --config.cmd sh --config.env PATH=/bin \
    --config.workingdir / --config.label canopy.test=busybox --config.exposedports 8080/tcp

  # layered: a second layer with files, then a hand-made one with whiteouts.
  umoci tag --image "$layout:busybox" layered
  umoci unpack --image "$layout:layered" "$work/b2" >/dev/null
  mkdir -p "$work/b2/rootfs/data" "$work/b2/rootfs/opaque/sub"
  echo gone >"$work/b2/rootfs/data/gone.txt"
  echo keep >"$work/b2/rootfs/data/keep.txt"
  echo old1 >"$work/b2/rootfs/opaque/old1"
  echo old2 >"$work/b2/rootfs/opaque/sub/old2"
  umoci repack --image "$layout:layered" "$work/b2"
  mkdir -p "$work/l3/data" "$work/l3/opaque"
  : >"$work/l3/data/.wh.gone.txt"
  : >"$work/l3/opaque/.wh..wh..opq"
  echo new >"$work/l3/opaque/new"
  tar --numeric-owner --owner=0 --group=0 -C "$work/l3" -cf "$work/l3.tar" data opaque
  umoci raw add-layer --image "$layout:layered" "$work/l3.tar"

  add_index "$layout" multi "$(host_arch)" s390x
  add_index "$layout" foreign s390x ppc64le
  rm -rf "$work/b1" "$work/b2" "$work/l3" "$work/l3.tar"
  # Another build may have won the race: keep the first one.
  if ! mv -T "$layout" "$images" 2>/dev/null; then
    [ -f "$images/index.json" ] || { echo "start.sh: cannot place $images" >&2; exit 1; }
  fi
  rm -rf "$work"
}

if [ ! -f "$images/index.json" ]; then
  mkdir -p "$(dirname "$images")"
  build_images
fi

scheme=http
curl_tls=()
if [ -n "${REGISTRY_TLS:-}" ]; then
  command -v openssl >/dev/null || { echo "start.sh: openssl is not installed" >&2; exit 1; }
  tls=$dir/tls
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=canopy test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$tls/key.pem" -out "$tls/req.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
  openssl x509 -req -in "$tls/req.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext" -out "$tls/cert.pem" 2>/dev/null
  scheme=https
  curl_tls=(--cacert "$tls/ca.pem")
fi

# Registry on a random free loopback port (retry if the port turns out to be taken).
mkdir -p "$dir/data"
log=$dir/registry.log
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  port=$(( RANDOM % 30000 + 20000 ))
  {
    echo "version: 0.1"
    echo "log:"
    echo "  level: info"
    echo "  accesslog:"
    echo "    disabled: false"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: $dir/data"
    echo "  delete:"
    echo "    enabled: true"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [ "$scheme" = https ]; then
      echo "  tls:"
      echo "    certificate: $tls/cert.pem"
      echo "    key: $tls/key.pem"
    fi
    if [ -n "${REGISTRY_HTPASSWD:-}" ]; then
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: canopy-test"
      echo "    path: $REGISTRY_HTPASSWD"
    fi
  } >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >>"$log" 2>&1 </dev/null &
  pid=$!
  ready=""
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    code=$(curl -s "${curl_tls[@]}" -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" || true)
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then ready=1; break; fi
    sleep 0.05
  done
  if [ -n "$ready" ]; then break; fi
  if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  wait "$pid" 2>/dev/null || true
  pid=""
done
[ -n "${pid:-}" ] || { echo "start.sh: the registry did not start; see $log" >&2; exit 1; }

creds=()
if [ -n "${REGISTRY_CREDS:-}" ]; then creds=(--dest-creds "$REGISTRY_CREDS"); fi
push() {
  skopeo copy --quiet --dest-tls-verify=false "${creds[@]}" "$@"
}
for name in $push_as; do
  push "oci:$images:busybox" "docker://127.0.0.1:$port/$name:latest"
done
push "oci:$images:layered" "docker://127.0.0.1:$port/layered:latest"
push --all "oci:$images:multi" "docker://127.0.0.1:$port/multi:latest"
push --all "oci:$images:foreign" "docker://127.0.0.1:$port/foreign:latest"

if [ -n "${REGISTRY_OWNER:-}" ]; then
  owner=$REGISTRY_OWNER
  (
    while kill -0 "$owner" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
    kill "$pid" 2>/dev/null || true
  ) </dev/null >/dev/null 2>&1 &
fi

echo "$port" >"$dir/port"
echo "$pid" >"$dir/pid"
echo "$port $pid"
