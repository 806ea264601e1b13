/* NQ_PARENT_RESULTS: a job that waited for parents (depends_on) finds
 * what they left in a file, a JSON object {parent_id: result}: a result
 * that is JSON text as that value, other text as a string, anything else
 * (and a parent that did not succeed, or whose result the broker dropped
 * past its bound) as null. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nqi/util.h"
#include "worker.h"

static json_t *result_json(const void *data, size_t len)
{
	if (!data)
		return json_null();
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY, NULL);
	if (v)
		return v;
	v = json_stringn(data, len);
	return v ? v : json_null();
}

static json_t *parents_json(const nq_job *job)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < nq_job_parent_result_count(job); i++) {
		const char *id;
		size_t len;
		const void *data =
		    nq_job_parent_result(job, i, &id, NULL, &len);
		if (json_object_set_new(o, id, result_json(data, len)) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int worker_parents_file(const nq_job *job, char *path, size_t len)
{
	path[0] = '\0';
	if (nq_job_parent_result_count(job) == 0)
		return 0;
	const char *dir = getenv("TMPDIR");
	snprintf(path, len, "%s/nq-parents-XXXXXX", dir && *dir ? dir : "/tmp");
	json_t *o = parents_json(job);
	int fd = o ? mkstemp(path) : -1;
	int rv = o ? 0 : ENOMEM;
	if (o && fd < 0)
		rv = errno;
	if (fd >= 0 && json_dumpfd(o, fd, JSON_COMPACT) != 0)
		rv = EIO;
	if (fd >= 0)
		close(fd);
	if (rv != 0 && fd >= 0)
		unlink(path);
	if (rv != 0)
		path[0] = '\0';
	json_decref(o);
	return rv;
}
