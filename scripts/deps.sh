# Sourced by test.sh and quickstart.sh: installs the Debian packages nq
# builds and runs with, only those missing, so a second run is instant.

NQ_DEB_PACKAGES=(
	build-essential cmake ninja-build pkg-config
	libnng-dev nng-utils
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	libmsgpack-dev libcmocka-dev liblmdb-dev lmdb-utils libjansson-dev
	libyaml-dev
	libmicrohttpd-dev
)

# What only the tests need on top: promtool (package prometheus) checks the
# /metrics output, curl scrapes it; iptables cuts the network in the fault
# suite; clang builds nq a second time, as a user with that compiler would.
NQ_TEST_PACKAGES=(prometheus curl openssl iptables clang-format git clang)
# libfuse 3 builds powerfs and fuse3 mounts it: the fault suite's power cuts.
NQ_TEST_PACKAGES+=(fuse3 libfuse3-dev)

# What the fuzz stage needs on top: clang's runtime libraries, which hold
# libFuzzer.
NQ_FUZZ_PACKAGES=(clang libclang-rt-dev)

# Runs a command as root: directly when we are root, else through sudo.
nq_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "nq: need root to run '$*' (and sudo is not installed)" >&2
		return 1
	fi
}

# Prints the packages of the arguments that are not installed.
nq_missing_packages() {
	local p
	for p in "$@"; do
		dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' ||
			echo "$p"
	done
}

# Installs whatever of the packages named (default NQ_DEB_PACKAGES) is
# missing: one apt-get update, then one quiet install. Returns non-zero when
# apt-get fails.
nq_install_deps() {
	local missing
	if [ "$#" -eq 0 ]; then
		set -- "${NQ_DEB_PACKAGES[@]}"
	fi
	if ! command -v dpkg >/dev/null 2>&1; then
		echo "nq: dpkg not found; install these by hand: $*" >&2
		return 1
	fi
	mapfile -t missing < <(nq_missing_packages "$@")
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	echo "nq: installing ${missing[*]}"
	nq_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		nq_as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "${missing[@]}" \
			>/dev/null
}

# Configures build directory $1 (default ./build): Ninja, RelWithDebInfo,
# warnings as errors; further arguments go to cmake.
nq_configure() {
	local dir="${1:-build}"
	shift || true
	cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DNQ_WERROR=ON "$@" >/dev/null
}

# Builds in build directory $1 (default ./build): the targets named after
# it, or everything.
nq_build() {
	local dir="${1:-build}"
	shift || true
	ninja -C "$dir" "$@"
}
