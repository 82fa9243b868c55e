/* The session's last refusals, served read-only to the agent's own
 * container as plain HTTP at http://agentsafe.internal/why (a reserved name
 * the proxy answers itself and never resolves), so `agentsafe-why` can say
 * what was refused without the policy or the log being mounted. Each line
 * is a refusal sentence (refusal.h): printable ASCII, client bytes as
 * \xNN. */
#include "proxy_int.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "refusal.h"

void why_init(struct why_ring *w)
{
	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->lock, NULL);
}

void why_destroy(struct why_ring *w)
{
	pthread_mutex_destroy(&w->lock);
}

void why_note(struct conn *c, const char *reason, const char *detail)
{
	char ts[40], body[WHY_LINE - 48];
	egress_format_ts(ts, sizeof ts);
	struct refusal rf = {c->is_connect, c->host, c->port,
			     reason,	    detail,  c->rule};
	refusal_body(&rf, body, sizeof body);
	struct why_ring *w = &c->w->srv->why;
	pthread_mutex_lock(&w->lock);
	snprintf(w->line[w->next], WHY_LINE, "%s %s", ts, body);
	w->next = (w->next + 1) % WHY_KEEP;
	if (w->n < WHY_KEEP)
		w->n++;
	pthread_mutex_unlock(&w->lock);
}

bool why_is_request(const struct conn *c)
{
	return !c->is_connect && strcmp(c->host, WHY_HOST) == 0;
}

void why_serve(struct conn *c)
{
	struct why_ring *w = &c->w->srv->why;
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		conn_start_closing(c);
		return;
	}
	pthread_mutex_lock(&w->lock);
	if (w->n == 0)
		evbuffer_add_printf(b, "agentsafe: nothing refused in this "
				       "session so far.\n");
	else
		evbuffer_add_printf(b,
				    "agentsafe: the last %u refusals of this "
				    "session, oldest first:\n",
				    w->n);
	for (unsigned i = 0; i < w->n; i++)
		evbuffer_add_printf(
		    b, "%s",
		    w->line[(w->next + WHY_KEEP - w->n + i) % WHY_KEEP]);
	pthread_mutex_unlock(&w->lock);
	evbuffer_add_printf(bufferevent_get_output(c->client.bev),
			    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n"
			    "Cache-Control: no-store\r\n\r\n",
			    evbuffer_get_length(b));
	bufferevent_write_buffer(c->client.bev, b);
	evbuffer_free(b);
	conn_start_closing(c);
}
