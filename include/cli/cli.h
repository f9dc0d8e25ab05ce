/*
 * cli.h - custodyctl's commands. custodyctl.c parses the global options and
 * dispatches to cmd_<verb>(); each command parses its own arguments, prints
 * one line per error, and returns an exit status from unlock.h.
 */
#ifndef CUSTODY_CLI_H
#define CUSTODY_CLI_H

#include <stdint.h>
#include "unlock.h"

struct cli {
	struct unlock_opts u;
	struct unlocked un;     /* filled by cli_unlock */
	int unlocked;
	int json;
	int tty;                /* stdout is a terminal: progress bars */
	int auto_rotated;       /* cli_unlock rotated an expired key */
	const char *recovery_file; /* --recovery: log in as the recovery secret */
	uint8_t *recovery;      /* its secret (locked memory) */
	const char *what;       /* the command, for messages (cli_unlock) */
	int64_t started_ms;     /* cli_now_ms() when custodyctl started */
};

/* The unlock_opts wait notice of custodyctl (arg: the struct cli): one
 * line when a command has waited a second for the store's write lock,
 * naming the process that holds it, and one when the wait ends. */
void cli_wait_notice(void *arg, int64_t waited_ms, int outcome);

/*
 * Open, authenticate and start the session (unlock_store); require a role
 * mask (1 << ROLE_x), 0 for any: a refusal is recorded in the trail and
 * gives EXIT_DENIED. An admin whose active key expired rotates it here
 * ([keys] max_age): the one place that happens.
 */
int cli_unlock(struct cli *c, int store_flags, int roles, const char *what);
void cli_done(struct cli *c);
/*
 * The command's audited transaction (unlock.h): cli_begin takes the
 * write lock; cli_finish records op and commits (rc 0) or rolls back and
 * records the refusal (rc != 0), and returns rc or the failure of either.
 */
int cli_begin(struct cli *c);
int cli_finish(struct cli *c, const char *op, const char *target, int rc);
/* Record one row in a transaction of its own (a read, a refusal). */
int cli_record(struct cli *c, const char *op, const char *target, int rc);
/* One line naming what went wrong with store error rc; returns the exit
 * status it maps to. */
int cli_report(const char *what, const char *name, int rc);
/* Read a new passphrase (file or terminal twice). */
struct passphrase;
int cli_new_passphrase(struct cli *c, const char *file, const char *who,
                       struct passphrase *out);
/* Progress line or bar on stderr: done/total units, with rate and ETA. */
void cli_progress(struct cli *c, const char *what, uint64_t done,
                  uint64_t total, int64_t started_ms, int final);
int64_t cli_now_ms(void);
/* --help/-h anywhere in argv: print text to stdout and return 1. */
int cli_wants_help(int argc, char **argv, const char *text);
/*
 * "--opt VALUE" or "--opt=VALUE" at argv[*i]: returns 1 with *val set (and
 * *i advanced past the value), 0 if argv[*i] is not opt, -1 with one line
 * on stderr (and *val NULL) if the value is missing.
 */
int cli_opt_value(int argc, char **argv, int *i, const char *opt,
                  const char **val);

/*
 * The one JSON writer of every --json: s as a JSON string, always valid
 * UTF-8 (file names and process names are bytes: a byte that is not UTF-8
 * becomes U+FFFD). For such fields cli_json_b64(key, s) then adds, only
 * when s is not valid UTF-8, the exact bytes as a sibling field
 * ,"KEY_b64":"BASE64" (README: the --json convention).
 */
void cli_json_str(const char *s);
void cli_json_b64(const char *key, const char *s);
/* Format a time (seconds, or ns with 6 or 9 digits of fraction) as
 * ISO 8601 / RFC 3339 UTC. */
void cli_time(char *buf, size_t len, int64_t secs);
void cli_time_ns(char *buf, size_t len, int64_t ns, int digits);

int cmd_init(struct cli *c, int argc, char **argv);
int cmd_info(struct cli *c, int argc, char **argv);
int cmd_check(struct cli *c, int argc, char **argv);
int cmd_backup(struct cli *c, int argc, char **argv);
int cmd_compact(struct cli *c, int argc, char **argv);
int cmd_upgrade(struct cli *c, int argc, char **argv);
int cmd_user(struct cli *c, int argc, char **argv);
int cmd_key(struct cli *c, int argc, char **argv);
int cmd_reencrypt(struct cli *c, int argc, char **argv);
int cmd_audit(struct cli *c, int argc, char **argv);
int cmd_login(struct cli *c, int argc, char **argv);
int cmd_logout(struct cli *c, int argc, char **argv);
int cmd_whoami(struct cli *c, int argc, char **argv);

/* user revoke NAME (cli_key.c): grants out, rotate, reencrypt, retire. */
int cli_user_revoke(struct cli *c, int argc, char **argv);
/* upgrade of a format-1 store (cli_upgrade.c): rebuild it as format 2. */
int cli_upgrade_v1(struct cli *c, const char *reset_dir,
                   const char *recovery_file);
/* Re-encrypt everything to the active version (unlocked admin). */
int cli_reencrypt_run(struct cli *c, double rate);

#endif
