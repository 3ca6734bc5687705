# Sourced by scripts/test-vm: fetching Debian kernels, the initramfs, the qemu boot.
CACHE="$ROOT/.cache/kernels"
APT_DIR="$CACHE/apt"
# A private apt: its own sources, lists and cache. The host's /etc/apt is not read for
# sources and nothing is installed: `apt-get download` only fetches the .deb.
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/nonexistent
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
MIRROR=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org}

apt_update() {
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  cat >"$APT_DIR/sources.list" <<EOF
deb $MIRROR/debian bullseye main
deb $MIRROR/debian bookworm main
deb $MIRROR/debian bookworm-updates main
deb $MIRROR/debian-security bookworm-security main
deb $MIRROR/debian bookworm-backports main
EOF
  # Refresh once a day: kernel point releases come every few weeks.
  if [ -z "$(find "$APT_DIR/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get "${APT_OPTS[@]}" -qq update >&2
  fi
}

has_candidate() {
  local policy
  policy=$(apt-cache "${APT_OPTS[@]}" policy "$1" 2>/dev/null)
  [[ $policy == *"Candidate: "[0-9]* ]]
}

deb_version() {
  apt-cache "${APT_OPTS[@]}" policy "$1" 2>/dev/null | sed -n 's/.*Candidate: //p'
}

# The package for an alias; the non-cloud flavour (the cloud one has no 9p modules).
resolve_kernel() {
  apt_update
  local re filter=cat
  case "$1" in
    5.10) re='^linux-image-5\.10\.0-[0-9]+-amd64$' ;;
    6.1) re='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) re='^linux-image-6\.12\.[0-9]+\+deb12(\.[0-9]+)?-amd64$' ;;
    # The newest 6.12 before 6.12.75, where the sockmap wake-up regression came in.
    6.12-old) re='^linux-image-6\.12\.[0-9]+\+deb12(\.[0-9]+)?-amd64$'
      filter="awk -F'[.+]' '\$3 < 75'" ;;
    linux-image-*) has_candidate "$1" && { echo "$1"; return 0; }; echo "$1 is not in bullseye, bookworm or bookworm-backports"; return 1 ;;
    *) echo "unknown kernel $1 (5.10, 6.1, 6.12-old, 6.12, host, all or linux-image-...)"; return 1 ;;
  esac
  local p
  for p in $(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- | grep -E "$re" | eval "$filter" | sort -rV); do
    if has_candidate "$p"; then echo "$p"; return 0; fi
  done
  echo "no package matches $re"
  return 1
}

# Downloads and unpacks the package once; prints the directory. Modules are decompressed
# (busybox insmod/modprobe read plain .ko) and indexed with busybox depmod.
fetch_kernel() {
  local pkg=$1 dir="$CACHE/x/$1"
  if [ ! -f "$dir/.ready" ]; then
    mkdir -p "$CACHE/debs" && rm -rf "$dir"
    (cd "$CACHE/debs" && ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get "${APT_OPTS[@]}" -qq download "$pkg" >&2)
    mkdir -p "$dir"
    dpkg-deb -x "$(ls "$CACHE/debs/${pkg}"_*.deb | head -1)" "$dir"
    local release
    release=$(ls "$dir/lib/modules")
    find "$dir/lib/modules" -name '*.ko.xz' -exec unxz -q {} +
    find "$dir/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +
    busybox depmod -b "$dir" "$release"
    touch "$dir/.ready"
  fi
  echo "$dir"
}

# Module and its dependencies, deepest first (modules.dep lists the whole closure).
module_closure() {
  local moddir=$1 mod=$2 line
  line=$(grep -E "(^|/)$mod\.ko:" "$moddir/modules.dep" || true)
  [ -n "$line" ] || return 0 # built in
  local self=${line%%:*} deps=${line#*:} out=()
  for d in $deps; do out=("$d" "${out[@]}"); done
  printf '%s\n' "${out[@]}" "$self"
}

# initramfs: static busybox, the modules, /init, and the guest's test script.
build_initramfs() {
  local dir=$1 release=$2 out=$3 cmd=$4 moddir="$1/lib/modules/$2"
  rm -rf "$out" && mkdir -p "$out/bin" "$out/modules"
  cp "$(command -v busybox)" "$out/bin/busybox"
  local m
  for m in virtio_ring virtio virtio_pci 9pnet 9pnet_virtio 9p overlay virtio_rng; do module_closure "$moddir" "$m"; done | awk '!seen[$0]++' >"$out/modules/order"
  while read -r m; do cp "$moddir/$m" "$out/modules/"; done <"$out/modules/order"
  sed -i 's#.*/##' "$out/modules/order"
  # The kernel's module requests (bridge, veth, nf_tables...) run in the shared root.
  # iptables-legacy runs the same path itself, from inside the chroot: /run/sluice-modprobe
  # exists on both sides (init writes the chroot's copy).
  mkdir -p "$out/run"
  printf '#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /bin/busybox modprobe "$@"\n' >"$out/run/sluice-modprobe"
  cat >"$out/guest.sh" <<EOF
export PATH=$ROOT/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=1
# TCG runs the guest several times slower: the harness scales its waits by this.
export SLUICE_TEST_SLOW=${SLUICE_TEST_SLOW:-10}
cd $ROOT
echo "SLUICE-VM-KERNEL \$(uname -r) \$(cat /proc/version)"
$cmd
echo "SLUICE-VM-RC=\$?"
EOF
  sed "s#@MODULES@#${moddir#/}#; s#@RELEASE@#$release#" "$ROOT/scripts/test-vm-init" >"$out/init"
  chmod +x "$out/init" "$out/run/sluice-modprobe"
  (cd "$out" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out.cpio.gz"
}

# Boots; returns the guest command's exit code (124 on timeout, 125 when it never ran).
boot_vm() {
  local kernel=$1 initrd=$2 log=$3 limit=$4
  # niced: TCG takes every core it is given, and the host may be running other tests.
  nice -n "${SLUICE_VM_NICE:-10}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 4G -smp 2 -display none -monitor none \
    -no-reboot -kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 panic=-1 loglevel=4" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -device virtio-rng-pci -nic none -serial "file:$log" &
  QEMU_PID=$!
  local tail_pid=''
  if [ "$VERBOSE" = 1 ]; then (sleep 1; tail -n +1 -f "$log") & tail_pid=$!; fi
  local waited=0
  while kill -0 "$QEMU_PID" 2>/dev/null && [ $waited -lt "$limit" ]; do sleep 2; waited=$((waited + 2)); done
  local timed_out=0
  if kill -0 "$QEMU_PID" 2>/dev/null; then kill -KILL "$QEMU_PID"; timed_out=1; fi
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=''
  [ -z "$tail_pid" ] || kill "$tail_pid" 2>/dev/null || true
  [ $timed_out = 0 ] || { echo "test-vm: the guest ran longer than ${limit}s" >>"$log"; return 124; }
  local rc
  rc=$(sed -n 's/^SLUICE-VM-RC=\([0-9]*\).*/\1/p' "$log" | tail -1)
  [ -n "$rc" ] || return 125
  return "$rc"
}

# ava's closing counts, summed over every ava run in the log (one per file with
# --per-file), e.g. "398 passed, 6 failed".
ava_summary() {
  local s
  s=$(tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;]*m//g' \
    | grep -oE '^ *[0-9]+ (tests? (passed|failed|skipped|todo)|known failures?|uncaught exceptions?|unhandled rejections?)' \
    | awk '{ n = $1; $1 = ""; k = $0; sub(/^ /, "", k); sub(/^tests? /, "", k); sub(/s$/, "", k)
             if (!(k in sum)) order[++len] = k; sum[k] += n }
           END { for (i = 1; i <= len; i++) { k = order[i]; plural = (k ~ /(passed|failed|skipped|todo)$/ || sum[k] == 1) ? "" : "s"
                   printf "%s%d %s%s", (i > 1 ? ", " : ""), sum[k], k, plural } }')
  echo "${s:-no ava summary}"
}

# The test files the globs name, resolved here (the guest sees the same tree). In order: a
# glob adds its files (sorted), a !glob drops the files so far that it matches.
expand_tests() {
  "$ROOT/node_modules/.bin/node" -e '
    const { globSync } = require("node:fs");
    const { matchesGlob } = require("node:path");
    let files = [];
    for (const p of process.argv.slice(1)) {
      if (p.startsWith("!")) files = files.filter((f) => !matchesGlob(f, p.slice(1)));
      else files.push(...globSync(p).sort().filter((f) => !files.includes(f)));
    }
    console.log(files.join("\n"));' "$@"
}

# A guest command running ava once per file; each file ends with a SLUICE-VM-FILE line.
per_file_cmd() {
  local ava=$1 f; shift
  printf 'rc=0; for f in'
  for f in "$@"; do printf ' %q' "$f"; done
  printf '; do echo "SLUICE-VM-START $f"; s=$(date +%%s); %s "$f"; r=$?; [ $r = 0 ] || rc=$r; echo "SLUICE-VM-FILE $f rc=$r secs=$(( $(date +%%s) - s ))"; done; (exit $rc)' "$ava"
}

# One line per file of a --per-file log: name, exit code, wall time, ava's counts; a file
# still running when the guest was stopped is named too.
per_file_summary() {
  local log=$1 seg running=''
  seg=$(mktemp "${TMPDIR:-/tmp}/sluice-test-vm-seg.XXXXXX")
  while IFS= read -r line; do
    if [[ $line == SLUICE-VM-START\ * ]]; then
      running=${line#SLUICE-VM-START } && : >"$seg"
    elif [[ $line == SLUICE-VM-FILE\ * ]]; then
      read -r _ f rc secs <<<"$line"
      echo "$f: exit ${rc#rc=} in ${secs#secs=}s ($(ava_summary "$seg"))"
      running=''
    else
      printf '%s\n' "$line" >>"$seg"
    fi
  done < <(tr -d '\r' <"$log")
  [ -z "$running" ] || echo "$running: not finished when the guest stopped ($(ava_summary "$seg") so far)"
  rm -f "$seg"
}
