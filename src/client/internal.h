/* Private to the client module: what its files share. */
#ifndef WARD_CLIENT_INTERNAL_H
#define WARD_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ward/client.h"
#include "ward/transport.h"

struct ward_client {
	int fd;
	uint64_t next_id;
	unsigned timeout; /* seconds; 0: none */
	bool broken;
	bool no_intr; /* waits ignore recorded signals (while cancelling) */
	char name[WARD_ADDR_FMT_MAX];
	char *peer; /* the agent's software string */
	uint64_t peer_max; /* the largest frame body the agent takes */
	struct ward_buf rx; /* the last frame received */
	struct ward_buf tx; /* encoding scratch */
};

/* Send an encoded body (b) followed by tail in one frame; marks the
 * connection broken on failure. */
int client_write(struct ward_client *c, const struct ward_buf *b,
    const void *tail, size_t n);
/* Fill buf from fd up to cap bytes (less only at the end of the input);
 * a signal ward_signals_install records interrupts it (xfer.c). */
int client_read_chunk(int fd, uint8_t *buf, size_t cap, size_t *got);
/* A protocol violation by the agent: breaks the connection. */
int client_protocol(struct ward_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
