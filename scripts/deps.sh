# Sourced by test.sh and quickstart.sh: installs the Debian packages nq
# builds and runs with, only those missing, so a second run is instant.

NQ_DEB_PACKAGES=(
	build-essential cmake ninja-build pkg-config
	libnng-dev nng-utils
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	libmsgpack-dev libcmocka-dev liblmdb-dev lmdb-utils libjansson-dev
	libicu-dev libyaml-dev
	libmicrohttpd-dev
	libcurl4-openssl-dev
	nettle-dev
)

# What the examples need on top (examples/, ./quickstart.sh NAME): the
# standard library of python3, and ImageMagick for the thumbnails (12 MB
# with its libraries, a third of libvips-tools').
NQ_EXAMPLE_PACKAGES=(python3 imagemagick)

# What only the tests need on top: promtool (package prometheus) checks the
# /metrics output, curl scrapes it; iptables cuts the network in the fault
# suite; clang builds nq a second time, as a user with that compiler would;
# python3-croniter checks the cron ticks against another implementation.
NQ_TEST_PACKAGES=(prometheus curl openssl iptables clang-format git clang
	nodejs python3-croniter)
# The examples run headless in ctest too (tests/examples).
NQ_TEST_PACKAGES+=("${NQ_EXAMPLE_PACKAGES[@]}")
# chromium: the dashboard's test runs in a real browser (tests/ui).
NQ_TEST_PACKAGES+=(chromium)
# libfuse 3 builds powerfs and fuse3 mounts it: the fault suite's power cuts.
NQ_TEST_PACKAGES+=(fuse3 libfuse3-dev)

# What the fuzz stage needs on top: clang's runtime libraries, which hold
# libFuzzer.
NQ_FUZZ_PACKAGES=(clang libclang-rt-dev)

# What the deploy stage needs on top: yamllint, podman with runc (crun
# refuses these machines' cgroups) and debootstrap for the image; kubectl
# comes from kubernetes-client where no kubectl is installed.
NQ_DEPLOY_PACKAGES=(yamllint prometheus curl nodejs podman runc debootstrap)

# The npm packages of the JSON API's tests (tests/api/package.json and its
# lockfile: the OpenAPI validator and ajv), of the deploy checks
# (tests/deploy: kubernetes-models, js-yaml, dockerfilelint) and of the
# dashboard's (tests/ui: puppeteer-core). Installed once, exactly as
# locked; a second run is instant.
nq_install_node_deps() {
	# Debian ships npm apart from nodejs; other builds of nodejs hold it.
	command -v npm >/dev/null 2>&1 || nq_install_deps npm || return 1
	local dir
	for dir in tests/api tests/deploy tests/ui; do
		if [ -f $dir/node_modules/.package-lock.json ] &&
			[ $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]; then
			continue
		fi
		npm ci --prefix $dir --no-audit --no-fund --loglevel=error || return 1
	done
}

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
