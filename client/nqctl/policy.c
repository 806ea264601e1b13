/*
 * nqctl queue: queue policies (admin).
 *
 *   nqctl queue show [QUEUE]            every key, its value and source
 *   nqctl queue set QUEUE KEY=VALUE...  runtime values (all or none)
 *   nqctl queue reset QUEUE [KEY...]    back to the file or the default
 *
 * Pairs are checked here with the broker's table of keys (nqi/policy.h)
 * before anything is sent, so a typo is a usage error (exit 2) naming the
 * key; the broker checks them again.
 */
#include <stdio.h>
#include <string.h>

#include "nqctl.h"
#include "nqi/json.h"
#include "nqi/policy.h"
#include "nqi/util.h"

/* One JSON object per queue: {"queue": Q, "policy": {KEY: {"value": V,
 * "source": S}}}. */
static int print_json(const nq_queue_policy *p)
{
	json_t *all = json_array(), *cur = NULL, *keys = NULL;
	const char *last = "";
	for (size_t i = 0; all && i < nq_queue_policy_rows(p); i++) {
		const char *q, *k, *v, *s;
		nq_queue_policy_row(p, i, &q, &k, &v, &s);
		if (!cur || strcmp(q, last) != 0) {
			keys = json_object();
			cur =
			    json_pack("{s:s, s:o}", "queue", q, "policy", keys);
			json_array_append_new(all, cur);
			last = q;
		}
		json_object_set_new(
		    keys, k, json_pack("{s:s, s:s}", "value", v, "source", s));
	}
	return nqctl_print_json(all);
}

/* QUEUE KEY VALUE SOURCE, one row per key; "-" for no value. */
static int print_table(const nq_queue_policy *p)
{
	printf("%-20s %-32s %-20s %s\n", "QUEUE", "KEY", "VALUE", "SOURCE");
	for (size_t i = 0; i < nq_queue_policy_rows(p); i++) {
		const char *q, *k, *v, *s;
		nq_queue_policy_row(p, i, &q, &k, &v, &s);
		printf("%-20s %-32s %-20s %s\n", q, k, *v ? v : "-", s);
	}
	return NQI_EXIT_OK;
}

static int print_policy(const nqctl *x, nq_queue_policy *p)
{
	int rc = x->conf.json ? print_json(p) : print_table(p);
	nq_queue_policy_free(p);
	return rc;
}

/* Every pair parses with the table of keys; else a usage error. */
static int check_pairs(const nqctl *x, const char *const *pairs, size_t n)
{
	char why[300];
	for (size_t i = 0; i < n; i++) {
		nqi_policy p = {0};
		int rv = nqi_policy_parse_pair(pairs[i], &p, why, sizeof why);
		nqi_policy_clear(&p);
		if (rv != 0)
			return nqctl_usage_error(x, "queue set: %s", why);
	}
	return NQI_CONTINUE;
}

static int check_keys(const nqctl *x, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!nqi_policy_key_find(keys[i]))
			return nqctl_usage_error(
			    x, "queue reset: %s: not a policy key", keys[i]);
	return NQI_CONTINUE;
}

static int run_sub(nqctl *x, const char *sub, const char *queue,
    const char *const *rest, size_t nrest)
{
	nq_queue_policy *p = NULL;
	int rv;
	if (strcmp(sub, "show") == 0)
		rv = nq_queue_policy_get(x->client, queue, &p);
	else if (strcmp(sub, "set") == 0)
		rv = nq_queue_policy_set(x->client, queue, rest, nrest, &p);
	else
		rv = nq_queue_policy_reset(x->client, queue, rest, nrest, &p);
	if (rv != NQ_OK)
		return nqctl_fail(x, rv, "queue %s%s%s", sub, queue ? " " : "",
		    queue ? queue : "");
	return print_policy(x, p);
}

/* The subcommand's arguments make sense; NQI_CONTINUE or the status. */
static int check_args(const nqctl *x, const char *sub, size_t nargs)
{
	bool show = strcmp(sub, "show") == 0, set = strcmp(sub, "set") == 0;
	if (!show && !set && strcmp(sub, "reset") != 0)
		return nqctl_usage_error(x,
		    "queue: unknown subcommand '%s' (show, set, reset)", sub);
	if (show && nargs > 2)
		return nqctl_usage_error(x, "queue show takes one QUEUE");
	if (!show && nargs < 2)
		return nqctl_usage_error(x, "queue %s: missing QUEUE", sub);
	if (set && nargs < 3)
		return nqctl_usage_error(x, "queue set: missing KEY=VALUE");
	if (nargs > 1 && strcmp(x->args[1], "*") != 0 &&
	    !nqi_name_valid(x->args[1]))
		return nqctl_usage_error(
		    x, "'%s' is not a valid queue name", x->args[1]);
	const char *const *rest = x->args + 2;
	size_t nrest = nargs > 2 ? nargs - 2 : 0;
	return set ? check_pairs(x, rest, nrest) : check_keys(x, rest, nrest);
}

int nqctl_queue(nqctl *x, int argc, char **argv, int start)
{
	const nqi_opt opts[] = {NQCTL_COMMON_OPTS(x)};
	int rc =
	    nqctl_args(x, opts, sizeof opts / sizeof *opts, argc, argv, start);
	if (rc != NQI_CONTINUE)
		return rc;
	const char *sub = x->args[0];
	if ((rc = check_args(x, sub, x->nargs)) != NQI_CONTINUE ||
	    (rc = nqctl_connect(x)) != NQI_CONTINUE)
		return rc;
	size_t nrest = x->nargs > 2 ? x->nargs - 2 : 0;
	return run_sub(
	    x, sub, x->nargs > 1 ? x->args[1] : NULL, x->args + 2, nrest);
}
