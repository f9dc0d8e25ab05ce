/*
 * witness.c - commit heads and failed logins to the system log, and the
 * check of a ledger against such a log (witness.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cipher.h"
#include "config.h"
#include "ledger.h"
#include "store.h"
#include "witness.h"

#define LOG_AUTHPRIV_NOTICE ((10 << 3) | 5)

void witness_line(const struct config *cfg, const char *fmt, ...)
{
	struct sockaddr_un a;
	char msg[768], line[1024], ts[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;
	int fd, n;

	if (!cfg || !cfg->audit_syslog)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	localtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%b %e %H:%M:%S", &tm);
	/* RFC 3164, as syslog(3) sends it */
	n = snprintf(line, sizeof line, "<%d>%s custodyfs[%ld]: %s",
	             LOG_AUTHPRIV_NOTICE, ts, (long)getpid(), msg);
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", cfg->audit_syslog_socket);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (n > 0)
		(void)sendto(fd, line, (size_t)n < sizeof line ? (size_t)n
		                                                 : sizeof line - 1,
		             MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&a,
		             sizeof a);
	close(fd);
}

void witness_commit(const struct config *cfg, const struct ledger_commit *c)
{
	char id[33], inst[33], h[65], ah[65];

	if (!cfg || !cfg->audit_syslog)
		return;
	cipher_hex(id, c->store_id, 16);
	cipher_hex(inst, c->st.instance, 16);
	cipher_hex(h, c->hash, 32);
	cipher_hex(ah, c->st.audit_hash, 32);
	witness_line(cfg, "commit store=%s instance=%s seq=%lld hash=%s"
	             " audit=%lld:%s", id, inst, (long long)c->seq, h,
	             (long long)c->st.audit_seq, ah);
}

/* "key=VALUE" after start in line: VALUE into out (hex or digits). */
static int field(const char *line, const char *key, char *out, size_t n)
{
	const char *p = strstr(line, key);
	size_t k = 0;

	if (!p)
		return -1;
	p += strlen(key);
	while (k + 1 < n && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
		out[k++] = *p++;
	out[k] = 0;
	return k ? 0 : -1;
}

int witness_verify(struct store *s, const struct ledger_commit *head,
                   const char *path, struct witness_report *rep, char *why,
                   size_t whylen)
{
	FILE *f = fopen(path, "re");
	struct ledger_commit *c = malloc(sizeof *c);
	char *line = NULL, id[33], inst[33], seq_s[24], h[65];
	char want_id[33], want_inst[33], have[65];
	size_t cap = 0;
	int64_t first = 0;
	int rc = 0;

	memset(rep, 0, sizeof *rep);
	if (!f || !c) {
		rc = f ? -ENOMEM : -errno;
		snprintf(why, whylen, "cannot read the witness '%s': %s", path,
		         strerror(-rc));
		goto out;
	}
	cipher_hex(want_id, head->store_id, 16);
	cipher_hex(want_inst, head->st.instance, 16);
	if (store_ledger_first(s, &first))
		first = 1;
	while (!rc && getline(&line, &cap, f) > 0) {
		const char *at = strstr(line, "commit store=");
		int64_t seq;
		if (!at || field(at, "store=", id, sizeof id) ||
		    field(at, "instance=", inst, sizeof inst) ||
		    field(at, "seq=", seq_s, sizeof seq_s) ||
		    field(at, "hash=", h, sizeof h) || strlen(h) != 64 ||
		    strcmp(id, want_id))
			continue;
		rep->lines++;
		seq = strtoll(seq_s, NULL, 10);
		if (seq < first) {
			rep->before++;
			continue;
		}
		if (seq > head->seq) {
			if (strcmp(inst, want_inst)) {
				rep->other++;
				continue;
			}
			snprintf(why, whylen, "the witness saw commit %lld (%.16s...),"
			         " newer than the store's head %lld: a cut tail or a"
			         " rolled-back file", (long long)seq, h,
			         (long long)head->seq);
			rc = -ESTALE;
			break;
		}
		if ((rc = ledger_read(s, seq, c))) {
			snprintf(why, whylen, "the witness saw commit %lld, which the"
			         " store lacks", (long long)seq);
			rc = -ESTALE;
			break;
		}
		cipher_hex(have, c->hash, 32);
		cipher_hex(id, c->st.instance, 16);
		if (strcmp(have, h)) {
			if (strcmp(inst, id)) {
				rep->other++; /* a copy's own commit at that seq */
				continue;
			}
			snprintf(why, whylen, "the witness saw commit %lld as %.16s...,"
			         " the store holds %.16s...: rewritten or rolled back",
			         (long long)seq, h, have);
			rc = -ESTALE;
			break;
		}
		rep->checked++;
	}
out:
	free(line);
	free(c);
	if (f)
		fclose(f);
	return rc;
}
