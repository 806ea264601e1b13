/*
 * The claim check's rules (nqi/blob.h): blob names, file:// references
 * both ways, the directory check that bounds what the broker deletes, and
 * SHA-256 against known digests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "nqi/blob.h"
#include "nqi/util.h"

#define NAME "nq-0123456789abcdef0123456789abcdef"

static void test_blob_sha256_matches_known_digests(void **state)
{
	char hex[NQI_SHA256_HEX];
	nqi_sha256 h;
	nqi_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	                         "27ae41e4649b934ca495991b7852b855");
	nqi_sha256_init(&h);
	nqi_sha256_update(&h, "a", 1);
	nqi_sha256_update(&h, "bc", 2);
	nqi_sha256_final(&h, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	                         "b00361a396177a9cb410ff61f20015ad");
	assert_true(nqi_sha256_valid(hex));
	hex[3] = 'A';
	assert_false(nqi_sha256_valid(hex));
	assert_false(nqi_sha256_valid("abc"));
}

static void test_blob_names_are_fresh_and_recognized(void **state)
{
	char a[NQI_BLOB_NAME_LEN + 1], b[NQI_BLOB_NAME_LEN + 1];
	nqi_blob_name(a);
	nqi_blob_name(b);
	assert_true(nqi_blob_name_valid(a));
	assert_string_not_equal(a, b);
	assert_true(nqi_blob_name_valid(NAME));
	assert_false(nqi_blob_name_valid("." NAME ".tmp"));
	assert_false(nqi_blob_name_valid(NAME "x"));
	assert_false(nqi_blob_name_valid("nq-../../etc/passwd"));
}

static void test_blob_file_refs_round_trip(void **state)
{
	char *path = NULL;
	char *ref = nqi_blob_file_ref("/mnt/blobs dir/%/" NAME);
	assert_string_equal(ref, "file:///mnt/blobs%20dir/%25/" NAME);
	assert_int_equal(nqi_blob_file_path(ref, &path), NQ_OK);
	assert_string_equal(path, "/mnt/blobs dir/%/" NAME);
	free(path);
	free(ref);
	assert_int_equal(
	    nqi_blob_file_path("file://localhost/a/" NAME, &path), NQ_OK);
	assert_string_equal(path, "/a/" NAME);
	free(path);
	assert_int_equal(
	    nqi_blob_file_path("file://host/a/" NAME, &path), NQ_EINVAL);
	assert_int_equal(nqi_blob_file_path("file:a/" NAME, &path), NQ_EINVAL);
	assert_int_equal(nqi_blob_file_path("file:///a%00b", &path), NQ_EINVAL);
	assert_int_equal(nqi_blob_file_path("file:///a%4", &path), NQ_EINVAL);
	assert_int_equal(
	    nqi_blob_file_path("http://h/" NAME, &path), NQ_EINVAL);
}

static void test_blob_in_dir_refuses_anything_else(void **state)
{
	assert_true(nqi_blob_in_dir("/srv/blobs", "/srv/blobs/" NAME));
	assert_true(nqi_blob_in_dir("/srv/blobs/", "/srv/blobs/" NAME));
	assert_false(nqi_blob_in_dir("/srv/blobs", "/srv/blobsx/" NAME));
	assert_false(nqi_blob_in_dir("/srv/blobs", "/srv/blobs/sub/" NAME));
	assert_false(nqi_blob_in_dir("/srv/blobs", "/srv/blobs/../" NAME));
	assert_false(nqi_blob_in_dir("/srv/blobs", "/srv/blobs/job.db"));
	assert_false(nqi_blob_in_dir("/srv/blobs", "/srv/" NAME));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blob_sha256_matches_known_digests),
	    cmocka_unit_test(test_blob_names_are_fresh_and_recognized),
	    cmocka_unit_test(test_blob_file_refs_round_trip),
	    cmocka_unit_test(test_blob_in_dir_refuses_anything_else),
	};
	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
