#!/usr/bin/env bash
# Builds nq from scratch and runs every test. Each stage is a function
# stage_<name>; `./test.sh` runs all of STAGES in order, `./test.sh build
# test` runs just those. Exits non-zero at the first failing stage.
#
# NQ_BUILD_DIR (default build) and NQ_TEST_TIMEOUT (seconds per test,
# default 300) change where it builds and how long one test may take.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/deps.sh

BUILD_DIR=${NQ_BUILD_DIR:-build}
TEST_TIMEOUT=${NQ_TEST_TIMEOUT:-300}

stage_deps() {
	nq_install_deps "${NQ_DEB_PACKAGES[@]}" "${NQ_TEST_PACKAGES[@]}"
}

stage_configure() {
	nq_configure "$BUILD_DIR"
}

stage_build() {
	nq_build "$BUILD_DIR"
}

stage_test() {
	ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 \
		--timeout "$TEST_TIMEOUT"
}

STAGES=(deps configure build test)

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
