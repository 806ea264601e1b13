/*
 * The dashboard at /ui/: files built into the binary (http_ui.h), served
 * with a Content-Security-Policy that lets the page load only its own
 * script and style and talk only to this broker, and with ETags (the
 * files' SHA-256), so that a browser asks again each time (no-cache) and
 * is answered 304 while the broker's build is the same.
 */
#include <string.h>

#include "http_ui.h"
#include "nqi/http_api.h"

#define UI_INDEX "/ui/index.html"

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

static const broker_ui_file *file_of(const char *path)
{
	if (strcmp(path, "/ui/") == 0)
		path = UI_INDEX;
	for (size_t i = 0; i < broker_ui_nfiles; i++)
		if (strcmp(broker_ui_files[i].path, path) == 0)
			return &broker_ui_files[i];
	return NULL;
}

static void headers(nqi_http_req *req, const broker_ui_file *f)
{
	nqi_http_req_add_header(req, "Content-Security-Policy", csp);
	nqi_http_req_add_header(req, "X-Content-Type-Options", "nosniff");
	nqi_http_req_add_header(req, "Referrer-Policy", "no-referrer");
	nqi_http_req_add_header(req, "Cache-Control", "no-cache");
	nqi_http_req_add_header(req, "ETag", f->etag);
}

void broker_ui_serve(nqi_http_req *req)
{
	const char *path = nqi_http_req_path(req);
	const char *method = nqi_http_req_method(req);
	const broker_ui_file *f;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		nqi_http_req_add_header(req, "Allow", "GET, HEAD");
		nqi_http_respond(req, 405, "text/plain", "method not allowed\n",
		    sizeof "method not allowed\n" - 1);
	} else if (strcmp(path, "/ui") == 0) {
		nqi_http_req_add_header(req, "Location", "/ui/");
		nqi_http_respond(req, 308, "text/plain", "", 0);
	} else if (!(f = file_of(path))) {
		nqi_http_respond(req, 404, "text/plain", "not found\n",
		    sizeof "not found\n" - 1);
	} else {
		const char *inm = nqi_http_req_header(req, "If-None-Match");
		bool same = inm && strstr(inm, f->etag) != NULL;
		headers(req, f);
		nqi_http_respond(req, same ? 304 : 200, f->type,
		    same ? "" : (const char *)f->data, same ? 0 : f->len);
	}
}
