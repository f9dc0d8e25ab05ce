/*
 * witness.c - commit heads and failed logins to the system log, and the
 * check of a ledger against such a log (witness.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
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

/*
 * The store instances of this file's chain, as runs of consecutive
 * commits (oldest first). A copy that forked from instance X at commit M
 * holds X's commits up to M only; a signer may also switch back to an
 * instance it left, so every run is kept, each found by one pass.
 */
struct run {
	uint8_t instance[16];
	int64_t first, last;
};

static int runs_of(struct store *s, int64_t first, int64_t head,
                   struct ledger_commit *c, struct run **out, size_t *n)
{
	struct run *r = NULL;
	size_t cap = 0;
	int rc;

	*n = 0;
	for (int64_t seq = first; seq <= head; seq++) {
		if ((rc = ledger_read(s, seq, c))) {
			free(r);
			return rc;
		}
		if (*n && !memcmp(r[*n - 1].instance, c->st.instance, 16)) {
			r[*n - 1].last = seq;
			continue;
		}
		if (*n == cap) {
			struct run *g = realloc(r, (cap ? 2 * cap : 8) * sizeof *r);
			if (!g) {
				free(r);
				return -ENOMEM;
			}
			r = g;
			cap = cap ? 2 * cap : 8;
		}
		memcpy(r[*n].instance, c->st.instance, 16);
		r[*n].first = r[*n].last = seq;
		(*n)++;
	}
	*out = r;
	return 0;
}

/* A run of instance (hex) that starts before seq: the file was that
 * instance before seq (NULL if it never was). */
static const struct run *run_before(const struct run *r, size_t n,
                                    const char *hex, int64_t seq)
{
	char h[33];

	for (size_t i = 0; i < n; i++) {
		cipher_hex(h, r[i].instance, 16);
		if (r[i].first < seq && !strcmp(h, hex))
			return &r[i];
	}
	return NULL;
}

int witness_verify(struct store *s, const struct ledger_commit *head,
                   const char *path, struct witness_report *rep, char *why,
                   size_t whylen)
{
	FILE *f = fopen(path, "re");
	struct ledger_commit *c = malloc(sizeof *c);
	char *line = NULL, id[33], inst[33], seq_s[24], h[65];
	char want_id[33], want_inst[33], have[65];
	struct run *runs = NULL;
	const struct run *left;
	size_t cap = 0, nruns = 0;
	int64_t first = 0;
	int rc = 0;

	struct stat sb;

	memset(rep, 0, sizeof *rep);
	if (!f || !c) {
		rc = f ? -ENOMEM : -errno;
		snprintf(why, whylen, "cannot read the witness '%s': %s", path,
		         strerror(-rc));
		goto out;
	}
	/* a log is a file or a pipe (journalctl ... |, <(journalctl ...));
	 * a device (/dev/zero) would be read for ever, one line without end */
	if (fstat(fileno(f), &sb) ||
	    !(S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode))) {
		rc = -EINVAL;
		snprintf(why, whylen, "cannot read the witness '%s': not a file"
		         " or a pipe", path);
		goto out;
	}
	cipher_hex(want_id, head->store_id, 16);
	cipher_hex(want_inst, head->st.instance, 16);
	if (store_ledger_first(s, &first))
		first = 1;
	if ((rc = runs_of(s, first, head->seq, c, &runs, &nruns))) {
		snprintf(why, whylen, "cannot read the store's commit records: %s",
		         strerror(rc < 0 ? -rc : rc));
		goto out;
	}
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
				if ((left = run_before(runs, nruns, inst, seq)))
					goto went_on;
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
				/* another instance's commit at that seq: a copy's own,
				 * unless this file was that instance before: then the
				 * instance went on after this file left it */
				if ((left = run_before(runs, nruns, inst, seq)))
					goto went_on;
				rep->other++;
				continue;
			}
			snprintf(why, whylen, "the witness saw commit %lld as %.16s...,"
			         " the store holds %.16s...: rewritten or rolled back",
			         (long long)seq, h, have);
			rc = -ESTALE;
			break;
		}
		rep->checked++;
		continue;
	went_on:
		/* the file was this instance before seq, and at seq it holds
		 * another instance's commit: it left the instance (a copy
		 * forked there) and the store went on without it: an older
		 * copy, wherever it stands (in the store's place, a rollback) */
		snprintf(why, whylen, "the witness saw commit %lld of store instance"
		         " %.8s..., which this file left at commit %lld: it is an"
		         " older copy of the store (a backup, or a rolled-back file"
		         " that forked)", (long long)seq, inst,
		         (long long)(left->last < seq ? left->last : seq - 1));
		rc = -ESTALE;
		break;
	}
out:
	free(line);
	free(c);
	free(runs);
	if (f)
		fclose(f);
	return rc;
}
