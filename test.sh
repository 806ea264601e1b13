#!/usr/bin/env bash
# Builds nq from scratch and runs every test. Each stage is a function
# stage_<name>; `./test.sh` runs all of STAGES in order, `./test.sh build
# test` runs just those. Exits non-zero at the first failing stage.
#
# NQ_BUILD_DIR (default build) and NQ_TEST_TIMEOUT (seconds per test,
# default 300) change where it builds and how long one test may take;
# NQ_ASAN_BUILD_DIR (default build-asan) and NQ_FUZZ_BUILD_DIR (default
# build-fuzz) where the sanitize and fuzz stages build; NQ_RELEASE_BUILD_DIR
# (default build-release) and NQ_CLANG_BUILD_DIR (default build-clang)
# where the variants stage builds.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/deps.sh

BUILD_DIR=${NQ_BUILD_DIR:-build}
TEST_TIMEOUT=${NQ_TEST_TIMEOUT:-300}
ASAN_BUILD_DIR=${NQ_ASAN_BUILD_DIR:-build-asan}
FUZZ_BUILD_DIR=${NQ_FUZZ_BUILD_DIR:-build-fuzz}
RELEASE_BUILD_DIR=${NQ_RELEASE_BUILD_DIR:-build-release}
CLANG_BUILD_DIR=${NQ_CLANG_BUILD_DIR:-build-clang}

stage_deps() {
	nq_install_deps "${NQ_DEB_PACKAGES[@]}" "${NQ_TEST_PACKAGES[@]}"
	nq_install_node_deps
}

# docs/openapi.yaml is valid OpenAPI 3 (@apidevtools/swagger-parser);
# that it matches the servers is tests/api's conformance test.
stage_lint() {
	node tests/api/lint.mjs docs/openapi.yaml
}

# The C sources follow .clang-format (third-party code excepted).
stage_format() {
	git ls-files '*.c' '*.h' | grep -v third_party |
		xargs clang-format --dry-run --Werror
}

stage_configure() {
	nq_configure "$BUILD_DIR"
}

stage_build() {
	nq_build "$BUILD_DIR"
}

# Builds (no tests run) the way users and packagers do: Release, whose
# optimizer finds warnings the default build does not, and with clang;
# warnings are errors here, so such a break shows now, not on their
# machines.
stage_variants() {
	nq_configure "$RELEASE_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
	nq_build "$RELEASE_BUILD_DIR"
	nq_configure "$CLANG_BUILD_DIR" -DCMAKE_C_COMPILER=clang
	nq_build "$CLANG_BUILD_DIR"
}

stage_test() {
	ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 \
		--timeout "$TEST_TIMEOUT"
}

# The whole suite again, built with ASan + UBSan (LeakSanitizer included).
# Every process, the daemons the integration tests start included, writes
# its sanitizer report to a file, so any report fails the stage, even one
# from a process whose test passed.
stage_sanitize() {
	local reports="$PWD/$ASAN_BUILD_DIR/sanitizer-reports" rc=0
	nq_configure "$ASAN_BUILD_DIR" -DNQ_SANITIZE=ON
	nq_build "$ASAN_BUILD_DIR"
	rm -rf "$reports"
	mkdir -p "$reports"
	ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan" \
		LSAN_OPTIONS="suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0" \
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
		ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j2 \
		--timeout "$TEST_TIMEOUT" || rc=$?
	if compgen -G "$reports/*" >/dev/null; then
		head -c 20000 "$reports"/* >&2
		echo "test.sh: sanitizer reports in $reports" >&2
		return 1
	fi
	return "$rc"
}

# deploy/: yamllint, the alerting rules' promtool tests, the rendered
# manifests against their schemas, dockerfilelint, then the image built
# with podman and the services run from it (tests/deploy/run; skipped with
# a message where podman cannot run; NQ_DEPLOY_IMAGE=0 skips only that).
stage_deploy() {
	nq_install_deps "${NQ_DEPLOY_PACKAGES[@]}"
	command -v kubectl >/dev/null 2>&1 || nq_install_deps kubernetes-client
	nq_install_node_deps
	tests/deploy/run
}

# Every libFuzzer target of tests/fuzz for a short bounded time.
stage_fuzz() {
	nq_install_deps "${NQ_FUZZ_PACKAGES[@]}"
	NQ_FUZZ_BUILD_DIR="$PWD/$FUZZ_BUILD_DIR" tests/fuzz/run --short
}

# The fault suite's short mode: broker, worker and nq-dlq crashes, stopped
# workers, a full disk, a cut network, power cuts, and all of them at random
# beside crowds of clients (mixed), under load; then a check that no
# confirmed job was lost (tests/faults/run; its tmpfs, packet filter and
# FUSE mounts need root, without which it falls back or skips and says so).
# Then the power cuts against services that do not sync, which must lose.
stage_faults() {
	tests/faults/run --build "$BUILD_DIR"
	tests/faults/run --build "$BUILD_DIR" --expect-loss
}

STAGES=(deps format lint configure build variants test deploy sanitize fuzz faults)

# Runs one stage in a subshell so that `set -e` holds inside it and a
# failing command anywhere in the stage fails the stage.
run_stage() {
	local name=$1 start=$SECONDS rc
	if ! declare -F "stage_$name" >/dev/null; then
		echo "test.sh: unknown stage '$name' (stages: ${STAGES[*]})" >&2
		exit 2
	fi
	echo "== $name"
	set +e
	(set -e; "stage_$name")
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		echo "test.sh: stage '$name' failed (exit $rc)" >&2
		exit 1
	fi
	echo "== $name ok ($((SECONDS - start)) s)"
}

main() {
	local s
	if [ "$#" -eq 0 ]; then
		set -- "${STAGES[@]}"
	fi
	for s in "$@"; do
		run_stage "$s"
	done
	echo "test.sh: all stages passed"
}

main "$@"
