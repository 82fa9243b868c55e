/* Learn mode's terminal side (learn.h): the proxy does the learning; here
 * the user is told, before and after, that the policy was not enforced,
 * and is shown the rules that would have been needed. */
#include "learn.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch_int.h"
#include "policy.h"

bool learn_start(const struct sess *s, bool flag)
{
	bool learning = flag;
	if (!learning) {
		struct policy *p = NULL;
		char err[POLICY_ERR_MAX];
		if (policy_load_file(s->policy, &p, err, sizeof err) == 0)
			learning = policy_is_learning(p);
		policy_unref(p);
	}
	if (learning)
		launch_alert(
		    "LEARN MODE%s: the policy is NOT enforced for names it "
		    "does not list; they are let through and recorded "
		    "(would_deny). Deny rules, private addresses and the "
		    "SNI check still hold. Do not give this session anything "
		    "you would not let leave.",
		    flag ? " (--learn)" : " (mode: learn in the policy)");
	return learning;
}

void learn_end(const struct sess *s)
{
	launch_alert("LEARN MODE session %s ended: the policy was NOT "
		     "enforced for unlisted names. The rules it would have "
		     "needed (review before adding them):",
		     s->id);
	(void)fflush(stdout);
	(void)fflush(stderr);
	char bin[4096];
	launch_exe_path("agentsafe", bin, sizeof bin);
	pid_t pid = fork();
	if (pid < 0) {
		launch_diag("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		/* As the user, whatever the launcher holds: a root
		 * launcher (sudo) drops to the invoking user first. */
		if (getuid() == 0 && s->host_uid != 0 &&
		    (setgroups(0, NULL) != 0 || setgid(s->host_gid) != 0 ||
		     setuid(s->host_uid) != 0))
			_exit(126);
		const char *argv[] = {"agentsafe", "log",     "suggest",
				      "--policy",  s->policy, s->log_path,
				      NULL};
		if (bin[0])
			execv(bin, (char *const *)argv);
		execvp("agentsafe", (char *const *)argv);
		fprintf(stderr, PFX "exec agentsafe: %s\n", strerror(errno));
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
		launch_diag("see the suggestions with: agentsafe log suggest "
			    "--session %s",
			    s->id);
}
