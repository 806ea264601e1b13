/*
 * The limit of the worker protocol that the broker and libnq must agree
 * on, defined once for both.
 */
#ifndef NQI_LEASES_H
#define NQI_LEASES_H

/*
 * The most leases one Fetch hands out and one Extend renews. The broker
 * looks at the first NQI_LEASES_MAX leases of an Extend only and answers
 * one result for each of those; libnq sends a longer list as several
 * requests. The work socket's receive limit (NQI_WORK_RECV_MAX,
 * nqi/limits.h) is derived from it: a full Extend fits, and past the
 * limit the broker could not answer at all (it drops the connection, and
 * with it every lease of that worker).
 */
#define NQI_LEASES_MAX 1000

#endif
