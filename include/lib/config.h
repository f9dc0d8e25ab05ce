/*
 * config.h - settings from custodyfs.ini (read with inih).
 *
 * Every setting has a built-in default (config_defaults), so a missing file
 * is fine when none was named. Durations accept s, m, h, d suffixes and
 * sizes K, M, G. Unknown sections or keys are errors: a typo in a security
 * setting must not pass silently.
 */
#ifndef CUSTODY_CONFIG_H
#define CUSTODY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/custodyfs/custodyfs.ini"

struct config {
	/* [kdf] Argon2id for new and upgraded passphrases */
	uint64_t kdf_opslimit;
	uint64_t kdf_memlimit;
	/* [store] */
	uint32_t block_size;        /* content block size, set at init */
	int64_t busy_timeout_ms;    /* wait for another process's lock */
	/* [mount] */
	int64_t commit_interval_ms; /* group commit window */
	int64_t idle_checkpoint_ms; /* fold the WAL in after this much idle */
	int64_t attr_timeout_ms;    /* kernel attribute/entry cache */
	int64_t readahead;          /* kernel read-ahead window, bytes (0: kernel's) */
	int64_t spin_us;            /* a worker polls this long after a reply (0: off) */
	/* [auth] */
	int64_t max_failures;       /* lock after this many in a row */
	int64_t lockout_s;          /* first lock interval; doubles */
	/* [keys] */
	int64_t key_max_age_s;      /* 0: keys do not expire */
	/* [audit] */
	int64_t audit_flush_ms;     /* read rows are batched this long */
	int audit_syslog;           /* commit heads to the system log */
	char audit_syslog_socket[108]; /* its socket (default /dev/log) */
};

void config_defaults(struct config *c);
/*
 * Load path over the defaults. path NULL means CONFIG_DEFAULT_PATH if it
 * exists. Returns 0, or -1 with one line in err ("file:line: what").
 */
int config_load(const char *path, struct config *c, char *err, size_t errlen);

/* Parse "90d", "500ms", "10s", "2w" (ms, s, m or min, h, d, w; a bare
 * number is seconds) into milliseconds; -1 on error. */
int64_t config_parse_duration_ms(const char *s);
/* Parse "64M", "1G", "4096" into bytes; -1 on error. */
int64_t config_parse_size(const char *s);

#endif
