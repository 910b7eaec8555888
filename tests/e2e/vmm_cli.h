/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The command line the suites' VMMs share (test_vmm.c, arm64_vmm.c): a usage
 * error, whole numbers and QEMU's `-name` value, so that every VMM is named
 * and refuses bad arguments alike. Each VMM includes it once, after its own
 * usage().
 */
#ifndef KVMEXIT_TESTS_E2E_VMM_CLI_H
#define KVMEXIT_TESTS_E2E_VMM_CLI_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out); /* the VMM's own */

static _Noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("test_vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static unsigned long long parse_number(const char *opt, const char *text, unsigned long long max)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > max)
		usage_error("%s: '%s' is not a whole number in 0..%llu", opt, text, max);
	return value;
}

/* Where `-name` puts what it names; no process_name: ",process=" is ignored. */
struct qemu_name {
	char *vm_name;
	size_t vm_name_size;
	char *process_name;
	size_t process_name_size;
	bool *debug_threads;
};

static void set_process_name(const char *name, const struct qemu_name *n)
{
	size_t len = strlen(name);

	if (!n->process_name)
		return;
	if (len >= n->process_name_size)
		usage_error("-name: process=%s: longer than %zu characters", name,
			    n->process_name_size - 1);
	memcpy(n->process_name, name, len + 1);
}

/*
 * QEMU's `-name` value: "NAME" or "guest=NAME", plus ",process=P" and
 * ",debug-threads=on|off". A doubled comma ",," is a literal comma.
 */
static void parse_qemu_name(const char *text, const struct qemu_name *n)
{
	char part[256];
	size_t len = 0;
	bool first = true;

	for (const char *p = text;; p++) {
		bool end_of_part = *p == '\0' || (*p == ',' && p[1] != ',');

		if (!end_of_part) {
			if (*p == ',')
				p++; /* ",," -> "," */
			if (len + 1 >= sizeof(part))
				usage_error("-name: value too long");
			part[len++] = *p;
			continue;
		}
		part[len] = '\0';
		if (strncmp(part, "guest=", 6) == 0)
			snprintf(n->vm_name, n->vm_name_size, "%s", part + 6);
		else if (strncmp(part, "process=", 8) == 0)
			set_process_name(part + 8, n);
		else if (strcmp(part, "debug-threads=on") == 0)
			*n->debug_threads = true;
		else if (strcmp(part, "debug-threads=off") == 0)
			*n->debug_threads = false;
		else if (first && strchr(part, '=') == NULL)
			snprintf(n->vm_name, n->vm_name_size, "%s", part);
		else
			usage_error("-name: unknown part '%s'", part);
		first = false;
		len = 0;
		if (*p == '\0')
			break;
	}
}

#endif /* KVMEXIT_TESTS_E2E_VMM_CLI_H */
