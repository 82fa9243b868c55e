/* Helpers every `agentsafe` sub-command shares: typo suggestions, fitting
 * tables to the terminal, and where the user's policy lives. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "logread.h"

#define WORD_MAX 64

/* Optimal string alignment distance (a swap of neighbours is one edit:
 * "lgo" -> "log"), on words of at most WORD_MAX bytes. */
static size_t distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > WORD_MAX || m > WORD_MAX)
		return (size_t)-1;
	static size_t d[WORD_MAX + 1][WORD_MAX + 1];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[n][m];
}

const char *cli_closest(const char *word, const char *const *cands)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; cands[i] != NULL; i++) {
		size_t dd = distance(word, cands[i]);
		if (dd < best_d) {
			best_d = dd;
			best = cands[i];
		}
	}
	/* One edit for short words, two for longer ones, and never more than
	 * a third of the word: "x" is no typo of "log". */
	size_t len = strlen(word);
	size_t limit = len <= 4 ? 1 : 2;
	if (best == NULL || best_d > limit || best_d * 3 > len + 1)
		return NULL;
	return best;
}

void cli_unknown(const char *prog, const char *kind, const char *word,
		 const char *const *cands)
{
	const char *near = cli_closest(word, cands);
	fprintf(stderr, "%s: unknown %s '", prog, kind);
	logread_fputs_escaped(word, stderr);
	if (near != NULL)
		fprintf(stderr, "'; did you mean '%s'?\n", near);
	else
		(void)fputs("'\n", stderr);
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
}

void cli_bad_option(const char *prog, int c, char **argv,
		    const struct option *lo)
{
	const char *arg = argv[optind - 1];
	if (c == ':') {
		fprintf(stderr, "%s: option '", prog);
		logread_fputs_escaped(arg, stderr);
		fprintf(stderr,
			"' needs a value\nTry '%s --help' for more "
			"information.\n",
			prog);
		return;
	}
	if (optopt != 0 && strncmp(arg, "--", 2) == 0) {
		/* A known long option (or a prefix of one) given "=VALUE". */
		fprintf(stderr, "%s: option '", prog);
		logread_fputs_escaped(arg, stderr);
		fprintf(stderr,
			"' takes no value\nTry '%s --help' for more "
			"information.\n",
			prog);
		return;
	}
	/* "--sumary=x" is looked up as "--sumary". */
	char word[WORD_MAX + 3];
	if (optopt != 0)
		snprintf(word, sizeof word, "-%c", optopt);
	else
		snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="),
			 arg);
	const char *cands[64];
	char names[64][WORD_MAX + 3];
	size_t n = 0;
	for (; lo[n].name != NULL && n < 63; n++) {
		snprintf(names[n], sizeof names[n], "--%s", lo[n].name);
		cands[n] = names[n];
	}
	cands[n] = NULL;
	cli_unknown(prog, "option", word, cands);
}

size_t cli_columns(void)
{
	struct winsize ws;
	if (isatty(STDOUT_FILENO) &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	if (c != NULL && c[0] >= '1' && c[0] <= '9') {
		char *end;
		unsigned long v = strtoul(c, &end, 10);
		if (*end == '\0' && v >= 20 && v <= 10000)
			return v;
	}
	return 0;
}

/* Length of an SGR sequence at s (ESC [ digits/; m), else 0. */
static size_t sgr_len(const char *s, size_t len)
{
	if (len < 3 || s[0] != '\033' || s[1] != '[')
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (s[i] == 'm')
			return i + 1;
		if ((s[i] < '0' || s[i] > '9') && s[i] != ';')
			return 0;
	}
	return 0;
}

size_t cli_width(const char *s, size_t len)
{
	size_t w = 0;
	for (size_t i = 0; i < len;) {
		size_t k = sgr_len(s + i, len - i);
		if (k > 0) {
			i += k;
			continue;
		}
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
		i++;
	}
	return w;
}

void cli_put_fitted(FILE *out, const char *line, size_t len, size_t cols)
{
	if (cols == 0 || cli_width(line, len) <= cols) {
		(void)fwrite(line, 1, len, out);
		(void)fputc('\n', out);
		return;
	}
	size_t w = 0, i = 0;
	bool colour = false;
	while (i < len) {
		size_t k = sgr_len(line + i, len - i);
		if (k > 0) {
			/* "ESC[0m" and "ESC[m" end colour; any other starts it.
			 */
			colour = !(k == 3 || (k == 4 && line[i + 2] == '0'));
			i += k;
			continue;
		}
		if (((unsigned char)line[i] & 0xC0) != 0x80) {
			if (w + 1 == cols)
				break; /* the last column is the ellipsis */
			w++;
		}
		i++;
	}
	/* i sits on a character's first byte: the cut is whole. */
	(void)fwrite(line, 1, i, out);
	(void)fputs(colour ? "\033[0m\xe2\x80\xa6\n" : "\xe2\x80\xa6\n", out);
}

int cli_default_policy(char *out, size_t len)
{
	const char *x = getenv("XDG_CONFIG_HOME");
	int n;
	if (x != NULL && x[0] == '/') {
		n = snprintf(out, len, "%s/agentsafe/policy.yaml", x);
	} else {
		const char *home = getenv("HOME");
		if (home == NULL || home[0] != '/')
			return -ENOENT;
		n = snprintf(out, len, "%s/.config/agentsafe/policy.yaml",
			     home);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void cli_put_cell(FILE *out, const char *s, size_t width, bool cut)
{
	char buf[1024];
	size_t need = logread_escape(s, buf, sizeof buf);
	size_t w = cli_width(buf, strlen(buf));
	if (cut && (need >= sizeof buf || w > width) && width > 0) {
		/* Whole characters up to width-1 columns, then the ellipsis. */
		size_t i = 0, cw = 0;
		while (buf[i] != '\0') {
			if (((unsigned char)buf[i] & 0xC0) != 0x80) {
				if (cw + 1 == width)
					break;
				cw++;
			}
			i++;
		}
		(void)fwrite(buf, 1, i, out);
		(void)fputs("\xe2\x80\xa6", out);
		return;
	}
	if (need >= sizeof buf)
		logread_fputs_escaped(s, out);
	else
		(void)fputs(buf, out);
	for (; w < width; w++)
		(void)fputc(' ', out);
}
