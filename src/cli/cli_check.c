/*
 * cli_check.c - custodyctl check: decrypt and verify everything.
 *
 * SQLite's own integrity check, the signed rights (verified by the login),
 * every credential against the signed state, every inode, block, name,
 * xattr and symlink against the trees (fs_check), and the whole commit
 * chain with the audit trail under it. Each problem is one line naming the file; the exit status is
 * EXIT_DAMAGE (4) when anything is wrong.
 *
 * --repair (admin, store not mounted read-write: it takes the writer lock)
 * first fixes what fs_check can fix without guessing, printing one
 * "repaired:" line per change and recording each in the audit trail, then
 * checks again: the exit status says whether anything is still wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "auth.h"
#include "cipher.h"
#include "cli.h"
#include "fs.h"
#include "keyadmin.h"
#include "mtree.h"
#include "store.h"
#include "unlock.h"

struct report {
	struct cli *c;
	uint64_t n;             /* problems printed */
	uint64_t nnote;         /* notes (not problems) */
	char **notes;           /* for --json */
	uint64_t nfix;          /* repairs made */
	struct fix {
		uint64_t ino;
		char *path, *what;
	} *fixes;               /* for --json and the audit trail */
	int64_t started;
};

/* "PATH: WHAT", or "inode N: WHAT" when the path is unknown. */
static void finding(char *buf, size_t cap, uint64_t ino, const char *path,
                    const char *what)
{
	if (path)
		snprintf(buf, cap, "%s: %s", path, what);
	else
		snprintf(buf, cap, "inode %llu: %s", (unsigned long long)ino, what);
}

/* One --json array element: {"ino":N,"path":P,"KEY":WHAT}. */
static void json_finding(int first, uint64_t ino, const char *path,
                         const char *key, const char *what)
{
	printf("%s\n    {\"ino\":%llu,\"path\":", first ? "" : ",",
	       (unsigned long long)ino);
	if (path) {
		cli_json_str(path);
		cli_json_b64("path", path);
	} else
		printf("null");
	printf(",\"%s\":", key);
	cli_json_str(what);
	printf("}");
}

static void emit(struct report *r, uint64_t ino, const char *path,
                 const char *what)
{
	char line[FS_PATH_MAX + 1024];

	if (r->c->json) {
		json_finding(r->n == 0, ino, path, "problem", what);
	} else {
		if (r->c->tty)
			fputc('\r', stderr);
		finding(line, sizeof line, ino, path, what);
		printf("%s\n", line);
	}
	r->n++;
}

/* What a live mount explains: said, not counted as damage. */
static void on_note(void *arg, uint64_t ino, const char *path,
                    const char *what)
{
	struct report *r = arg;
	char line[FS_PATH_MAX + 1024], **p;

	finding(line, sizeof line, ino, path, what);
	if (!r->c->json) {
		if (r->c->tty)
			fputc('\r', stderr);
		printf("note: %s\n", line);
	} else if ((p = realloc(r->notes, (r->nnote + 1) * sizeof *p))) {
		r->notes = p;
		p[r->nnote] = strdup(line);
	} else
		return;
	r->nnote++;
}

static void print_notes(struct report *r)
{
	if (r->c->json) {
		printf(",\n  \"notes\": [");
		for (uint64_t i = 0; i < r->nnote; i++) {
			printf("%s\n    ", i ? "," : "");
			cli_json_str(r->notes[i] ? r->notes[i] : "");
		}
		printf("%s  ]", r->nnote ? "\n" : "");
	}
	for (uint64_t i = 0; i < r->nnote && r->notes; i++)
		free(r->notes[i]);
	free(r->notes);
	r->notes = NULL;
}

static void on_repaired(void *arg, uint64_t ino, const char *path,
                        const char *what)
{
	struct report *r = arg;
	struct fix *p = realloc(r->fixes, (r->nfix + 1) * sizeof *p);
	char line[FS_PATH_MAX + 1024];

	if (!r->c->json) {
		if (r->c->tty)
			fputc('\r', stderr);
		finding(line, sizeof line, ino, path, what);
		printf("repaired: %s\n", line);
	}
	if (!p)
		return;
	r->fixes = p;
	p[r->nfix].ino = ino;
	p[r->nfix].path = path ? strdup(path) : NULL;
	p[r->nfix].what = strdup(what);
	r->nfix++;
}

/* The repairs into the audit trail (and --json), then free them. */
static void record_fixes(struct report *r)
{
	char line[1200]; /* an audit row's target */

	if (r->c->json) {
		printf(",\n  \"repaired\": [");
		for (uint64_t i = 0; i < r->nfix; i++)
			json_finding(i == 0, r->fixes[i].ino, r->fixes[i].path,
			             "repaired", r->fixes[i].what ? r->fixes[i].what : "");
		printf("%s  ]", r->nfix ? "\n" : "");
	}
	for (uint64_t i = 0; i < r->nfix; i++) {
		finding(line, sizeof line, r->fixes[i].ino, r->fixes[i].path,
		        r->fixes[i].what ? r->fixes[i].what : "");
		cli_record(r->c, "check repair", line, 0);
		free(r->fixes[i].path);
		free(r->fixes[i].what);
	}
	free(r->fixes);
	r->fixes = NULL;
}

static void on_problem(void *arg, uint64_t ino, const char *path,
                       const char *what)
{
	emit(arg, ino, path, what);
}

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct report *r = arg;
	if (!r->c->json)
		cli_progress(r->c, "check", done, total, r->started, done == total);
}

/* Every credential row against the credentials tree of the head. */
struct creds_ctx {
	struct report *r;
	struct unlocked *u;
	uint64_t n;
};

static int check_cred(void *arg, const struct store_cred *cr)
{
	struct creds_ctx *x = arg;
	uint8_t want[32], have[32];
	char what[200];

	x->n++;
	auth_cred_leaf(cr, have);
	if (mtree_leaf(x->u->creds, MTREE_CREDS, 0, &x->u->head.st.creds,
	               (uint64_t)cr->user_id, want) ||
	    !cipher_memeq(want, have, sizeof have)) {
		snprintf(what, sizeof what, "the credential of user id %lld ('%s')"
		         " is not the signed one (edited, or put back from an older"
		         " copy)", (long long)cr->user_id, cr->name);
		emit(x->r, 0, "<credentials>", what);
	}
	return 0;
}

/* Crypto-shredding left nothing behind: no grant of a destroyed version
 * in the table, none of their recorded fingerprints in the raw file. */
static void check_destroyed(struct report *r)
{
	uint32_t v = 0;
	int t = keyadmin_destroyed_traces(r->c->un.s, r->c->un.r, &v);
	char what[400];

	if (t < 0) {
		snprintf(what, sizeof what, "cannot look for destroyed key"
		         " material: %s", strerror(-t));
		emit(r, 0, "<keys>", what);
	} else if (t) {
		snprintf(what, sizeof what, "a destroyed version's sealed key"
		         " material still exists in the store file or its WAL (v%u:"
		         "%s%s%s)", v,
		         t & KEYADMIN_TRACE_ROWS ? " its grants are in the grants"
		                                   " table" : "",
		         t & STORE_IN_WAL ? " in the WAL, which the next checkpoint"
		                            " empties" : "",
		         t & STORE_IN_FILE && !(t & KEYADMIN_TRACE_ROWS)
		                 ? " in the store file" : "");
		emit(r, 0, "<keys>", what);
	}
}

int cmd_check(struct cli *c, int argc, char **argv)
{
	static const char help[] =
	"usage: custodyctl check [--json] [--repair [--zero-unreadable]]\n"
	"Decrypt and verify everything: SQLite integrity, signatures on users and\n"
	"keys, every inode, block, name, xattr and symlink, the directory tree\n"
	"(reachability, link counts, orphans, cycles), the audit chain, and that\n"
	"no sealed key material of a destroyed key version is left in the store\n"
	"file or its WAL.\n"
	"Prints one line per problem naming the file. Exit status 0 if all is\n"
	"well, 4 if anything is damaged or was tampered with.\n"
	"\n"
	"  --repair           (admin; the store must not be mounted read-write)\n"
	"                     first fix what can be fixed without guessing, one\n"
	"                     'repaired:' line each, recorded in the audit trail:\n"
	"                     drop entries naming nothing, remove files unlinked\n"
	"                     while open, link orphans into /lost+found as\n"
	"                     #INODE, correct link counts. Forged rows are left\n"
	"                     alone. Then check again: the exit status is 0 only\n"
	"                     if nothing is left wrong.\n"
	"  --zero-unreadable  with --repair: drop blocks that fail authentication,\n"
	"                     lie past the end or are missing, so those parts of\n"
	"                     the file read as zeros (their data is lost).\n";
	struct report r = { c, 0, 0, NULL, 0, NULL, 0 };
	struct fs_check_ops ops = { on_problem, on_progress, &r, 0, 0,
	                            on_repaired, 0, on_note };
	struct fs_check_stats st;
	struct fs_opts fo = { .shared = 1, .read_only = 1 };
	int lock_fd = -1;
	struct creds_ctx cx;
	struct fs *fs = NULL;
	char msg[512];
	int64_t bad = 0;
	uint64_t arows = 0;
	int rc, s;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--repair"))
			ops.repair = 1;
		else if (!strcmp(argv[i], "--zero-unreadable"))
			ops.zero_unreadable = 1;
		else {
			fprintf(stderr, "custodyctl: check: unknown argument '%s'\n",
			        argv[i]);
			return EXIT_USAGE;
		}
	}
	if (ops.zero_unreadable && !ops.repair) {
		fprintf(stderr, "custodyctl: check: --zero-unreadable needs"
		        " --repair\n");
		return EXIT_USAGE;
	}
	if (ops.repair) {
		/* before the passphrase: a mounted store is a quick refusal */
		const char *path = c->u.store ? c->u.store : "";
		lock_fd = unlock_writer_lock(path);
		if (lock_fd == -EBUSY) {
			fprintf(stderr, "custodyctl: check --repair: store '%s' is"
			        " mounted read-write; unmount it first\n", path);
			return EXIT_BUSY;
		}
		/* other errors (no such file): cli_unlock says it best */
	} else {
		/* a read-write mount holding the store now serves files that
		 * are unlinked but open: expected, not damage */
		int fd = unlock_writer_lock(c->u.store ? c->u.store : "");
		if (fd == -EBUSY)
			ops.live_writer = 1;
		else if (fd >= 0)
			close(fd);
	}
	if ((s = cli_unlock(c, ops.repair ? 0 : STORE_READONLY,
	                    ops.repair ? (1 << ROLE_ADMIN)
	                               : (1 << ROLE_ADMIN) | (1 << ROLE_WRITER) |
	                                 (1 << ROLE_READER),
	                    ops.repair ? "check --repair" : "check"))) {
		if (lock_fd >= 0)
			close(lock_fd);
		return s;
	}
	if (ops.repair) {
		fo.read_only = 0; /* shared stays: no orphan sweep behind our back */
		if (lock_fd < 0) {
			fprintf(stderr, "custodyctl: check --repair: cannot lock the"
			        " store: %s\n", strerror(-lock_fd));
			return EXIT_RUNTIME;
		}
	}
	r.started = cli_now_ms();
	cx = (struct creds_ctx){ &r, &c->un, 0 };
	if (c->json)
		printf("{\n  \"problems\": [");
	if (!ops.repair)
		cli_record(c, "check", "", 0);
	if (store_integrity_check(c->un.s, msg, sizeof msg))
		emit(&r, 0, "<store>", msg);
	/* the authority chain, the roster and the newest commit were
	 * verified by the login; the credentials against the signed state */
	store_cred_each(c->un.s, check_cred, &cx);
	check_destroyed(&r);
	rc = fs_new(&c->un, &fo, &fs);
	if (rc) {
		snprintf(msg, sizeof msg, "cannot open the filesystem: %s",
		         strerror(-rc));
		emit(&r, 0, "<store>", msg);
		memset(&st, 0, sizeof st);
	} else {
		rc = fs_check(fs, &ops, &st);
		if (rc < 0) {
			snprintf(msg, sizeof msg, "check stopped: %s", strerror(-rc));
			emit(&r, 0, "<store>", msg);
		}
		fs_free(fs);
	}
	if (lock_fd >= 0)
		close(lock_fd); /* the repairs are committed (fs_free) */
	/* the whole commit chain and the trail under it */
	if (audit_verify(c->un.s, c->un.r, &bad, &arows, msg, sizeof msg)) {
		char what[600];
		snprintf(what, sizeof what, "audit trail and commits: %s", msg);
		emit(&r, 0, "<audit>", what);
	}
	if (c->json)
		printf("%s  ]", r.n ? "\n" : "");
	print_notes(&r);
	if (ops.repair)
		record_fixes(&r);
	if (c->json) {
		printf(",\n  \"ok\": %s,\n  \"inodes\": %llu, \"files\": %llu,"
		       " \"directories\": %llu, \"symlinks\": %llu, \"blocks\": %llu,"
		       " \"bytes\": %llu, \"names\": %llu, \"audit_rows\": %llu\n}\n",
		       r.n ? "false" : "true",
		       (unsigned long long)st.inodes, (unsigned long long)st.files,
		       (unsigned long long)st.dirs, (unsigned long long)st.symlinks,
		       (unsigned long long)st.blocks, (unsigned long long)st.bytes,
		       (unsigned long long)st.names, (unsigned long long)arows);
	} else {
		if (ops.repair)
			printf("check: %llu repair%s made\n", (unsigned long long)r.nfix,
			       r.nfix == 1 ? "" : "s");
		printf("check: %llu problem%s; %llu files, %llu directories,"
		       " %llu symlinks, %llu blocks (%llu bytes), %llu names,"
		       " %llu audit rows verified\n",
		       (unsigned long long)r.n, r.n == 1 ? "" : "s",
		       (unsigned long long)st.files, (unsigned long long)st.dirs,
		       (unsigned long long)st.symlinks, (unsigned long long)st.blocks,
		       (unsigned long long)st.bytes, (unsigned long long)st.names,
		       (unsigned long long)arows);
	}
	return r.n ? EXIT_DAMAGE : EXIT_OK;
}
