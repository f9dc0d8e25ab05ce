/*
 * passphrase.c - passfile, --extpass and terminal input of passphrases.
 *
 * Bytes are read one at a time straight into locked memory; nothing goes
 * through stdio buffers. The terminal is switched to no-echo and restored
 * on every path.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cipher.h"
#include "passphrase.h"

/* Read the first line of fd into p. Returns 0, or -errno. */
static int read_line(int fd, struct passphrase *p)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= PASSPHRASE_MAX)
			return -E2BIG;
		p->buf[n++] = c;
	}
	if (n && p->buf[n - 1] == '\r')
		n--;
	p->buf[n] = 0;
	p->len = n;
	return 0;
}

static int from_file(const char *path, struct passphrase *p, char *err,
                     size_t errlen)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "cannot read passfile '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "cannot read passfile '%s': %s", path,
		         strerror(errno));
		close(fd);
		return -1;
	}
	/* as ssh with a private key: a file someone else can read or change
	 * is refused (a pipe or --extpass has no such question) */
	if (S_ISREG(sb.st_mode) && sb.st_uid != getuid() && sb.st_uid != 0) {
		snprintf(err, errlen, "passfile '%s' is owned by uid %u, not by you"
		         " (uid %u) or root: refusing it", path,
		         (unsigned)sb.st_uid, (unsigned)getuid());
		close(fd);
		return -1;
	}
	/* one's own: nobody else may have any access; root's (a systemd
	 * credential, shared through its group or an ACL): not writable by
	 * its group, nothing for others */
	if (S_ISREG(sb.st_mode) &&
	    (sb.st_mode & (sb.st_uid == getuid() ? 077 : 027))) {
		snprintf(err, errlen, "passfile '%s' is open to %s (mode %04o):"
		         " refusing it (chmod 600 it)", path,
		         sb.st_mode & 007 ? "others" : "its group",
		         (unsigned)(sb.st_mode & 07777));
		close(fd);
		return -1;
	}
	rc = read_line(fd, p);
	close(fd);
	if (rc) {
		snprintf(err, errlen, "cannot read passfile '%s': %s", path,
		         strerror(-rc));
		return -1;
	}
	return 0;
}

static int from_command(const char *cmd, struct passphrase *p, char *err,
                        size_t errlen)
{
	int fds[2], status, rc;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "extpass: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "extpass: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	rc = read_line(fds[0], p);
	/* drain the rest so the command does not die of SIGPIPE */
	{
		char junk[256];
		while (read(fds[0], junk, sizeof junk) > 0)
			;
		cipher_wipe(junk, sizeof junk);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "extpass command failed (%s)",
		         rc ? strerror(-rc) : "non-zero exit status");
		return -1;
	}
	return 0;
}

static int from_tty(const char *prompt, struct passphrase *p, char *err,
                    size_t errlen)
{
	struct termios old, noecho;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY), rc;

	if (fd < 0) {
		snprintf(err, errlen, "no terminal to ask for the passphrase:"
		         " use --passfile or --extpass");
		return -1;
	}
	if (tcgetattr(fd, &old) != 0) {
		close(fd);
		snprintf(err, errlen, "cannot set up the terminal: %s",
		         strerror(errno));
		return -1;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* the prompt is a courtesy; reading still works */
	}
	tcsetattr(fd, TCSAFLUSH, &noecho);
	rc = read_line(fd, p);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* ditto */
	}
	close(fd);
	if (rc) {
		snprintf(err, errlen, "cannot read the passphrase: %s",
		         strerror(-rc));
		return -1;
	}
	return 0;
}

int passphrase_get(const char *passfile, const char *extpass,
                   const char *prompt, int confirm, struct passphrase *out,
                   char *err, size_t errlen)
{
	int rc;

	out->len = 0;
	out->buf = secmem_alloc(PASSPHRASE_MAX);
	if (!out->buf) {
		snprintf(err, errlen, "cannot allocate locked memory");
		return -1;
	}
	if (passfile)
		rc = from_file(passfile, out, err, errlen);
	else if (extpass)
		rc = from_command(extpass, out, err, errlen);
	else {
		rc = from_tty(prompt, out, err, errlen);
		if (!rc && confirm) {
			struct passphrase again = { secmem_alloc(PASSPHRASE_MAX), 0 };
			if (!again.buf) {
				snprintf(err, errlen, "cannot allocate locked memory");
				rc = -1;
			} else {
				rc = from_tty("Repeat passphrase: ", &again, err, errlen);
				if (!rc && (again.len != out->len ||
				            !cipher_memeq(again.buf, out->buf, out->len))) {
					snprintf(err, errlen, "passphrases do not match");
					rc = -1;
				}
				passphrase_free(&again);
			}
		}
	}
	if (!rc && out->len == 0) {
		snprintf(err, errlen, "empty passphrase");
		rc = -1;
	}
	if (rc)
		passphrase_free(out);
	return rc;
}

void passphrase_free(struct passphrase *p)
{
	secmem_free(p->buf);
	p->buf = NULL;
	p->len = 0;
}
