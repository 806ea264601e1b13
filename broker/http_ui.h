/*
 * The dashboard's files, built into nq-broker (broker/ui/, turned into
 * ui_files.c by broker/ui/embed.cmake at build time) and served at /ui/
 * by http_ui.c.
 */
#ifndef BROKER_HTTP_UI_H
#define BROKER_HTTP_UI_H

#include <stddef.h>

#include "nqi/http.h"

typedef struct broker_ui_file {
	const char *path; /* "/ui/app.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
	const char *etag; /* "\"<sha-256 prefix>\"" */
} broker_ui_file;

extern const broker_ui_file broker_ui_files[];
extern const size_t broker_ui_nfiles;

/* Answers a request under /ui: a file, 304 when the client has it, a
 * redirect of /ui to /ui/, 404 or 405. */
void broker_ui_serve(nqi_http_req *req);

#endif
