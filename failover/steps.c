/*
 * steps.c - a failover command as a list of steps whose outcomes are
 * persisted, so that running the command again resumes where it stopped.
 *
 * The state lives in state_dir/promote/CMD.json, replaced whole (written
 * to a temporary file, fsynced, renamed, the folder fsynced) before a step
 * begins and after it ends: a crash at any moment leaves either state,
 * and a step that had begun is run again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fo_int.h"

#define FO_STATE_DIR "promote"

struct fo_state {
	char dir[4096];
	char path[4096];
	json_t *root;  /* {"steps": {NAME: {...}}, "vars": {...}} */
	json_t *steps; /* borrowed from root */
};

static int
state_paths(struct fo_state *st, const struct hs_conf *conf, const char *cmd)
{
	if ((size_t)snprintf(st->dir, sizeof(st->dir), "%s/%s", conf->state_dir,
	                     FO_STATE_DIR) >= sizeof(st->dir) ||
	    (size_t)snprintf(st->path, sizeof(st->path), "%s/%s.json", st->dir,
	                     cmd) >= sizeof(st->path))
		return -ENAMETOOLONG;
	return HS_OK;
}

/* A state file that is not ours stops the command: guessing could repeat
 * a step that must not run twice, or skip one that never ran. */
static int
state_load(struct fo_state *st, char *why, size_t whylen)
{
	json_error_t e;

	st->root = json_load_file(st->path, 0, &e);
	if (st->root == NULL) {
		if (access(st->path, F_OK) < 0 && errno == ENOENT) {
			st->root = json_pack("{s:{},s:{}}", "steps", "vars");
			if (st->root == NULL)
				return -ENOMEM;
		} else {
			snprintf(why, whylen,
			         "%.600s: unreadable (%.200s, line %d); remove "
			         "it to "
			         "start the command afresh",
			         st->path, e.text, e.line);
			return HS_ECONFIG;
		}
	}
	st->steps = json_object_get(st->root, "steps");
	if (!json_is_object(st->steps) ||
	    !json_is_object(json_object_get(st->root, "vars"))) {
		snprintf(why, whylen,
		         "%.600s: not a step state (no steps or vars object); "
		         "remove it to start the command afresh",
		         st->path);
		return HS_ECONFIG;
	}
	return HS_OK;
}

static int
fsync_dir(const char *dir)
{
	int fd, rc = HS_OK;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int
state_save(struct fo_state *st)
{
	char tmp[4096 + 8];
	char *text;
	int fd, rc = HS_OK;

	if (mkdir(st->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((text = json_dumps(st->root, JSON_INDENT(1) | JSON_SORT_KEYS)) ==
	    NULL)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp", st->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = -errno;
	else {
		if ((rc = hs_write_all(fd, text, strlen(text))) == 0 &&
		    (rc = hs_write_all(fd, "\n", 1)) == 0 && fsync(fd) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && rename(tmp, st->path) < 0)
			rc = -errno;
		if (rc < 0)
			unlink(tmp);
		else
			rc = fsync_dir(st->dir);
	}
	free(text);
	return rc;
}

static const char *
step_state(const struct fo_state *st, const char *name)
{
	json_t *s = json_object_get(st->steps, name);

	return json_string_value(json_object_get(s, "state"));
}

static int
step_record(struct fo_state *st, const char *name, const char *state,
            double secs, const char *text)
{
	json_t *s = json_pack("{s:s,s:f,s:s}", "state", state, "seconds", secs,
	                      "text", text);

	if (s == NULL || json_object_set_new(st->steps, name, s) < 0)
		return -ENOMEM;
	return state_save(st);
}

static int
exit_status(int rc)
{
	if (rc == HS_ECONFIG)
		return 2;
	if (rc == -EHOSTUNREACH)
		return 3;
	return 1;
}

static void
dry_run(struct fo_ctx *c, const struct fo_state *st,
        const struct fo_step *steps, size_t n)
{
	char buf[1024];

	fprintf(c->opts->out, "%s: plan (--dry-run: nothing is changed)\n",
	        c->cmd);
	for (size_t i = 0; i < n; i++) {
		const char *s = step_state(st, steps[i].name);

		buf[0] = '\0';
		steps[i].plan(c, buf, sizeof(buf));
		fprintf(c->opts->out, "  %zu. %s: %s%s\n", i + 1, steps[i].name,
		        buf,
		        s != NULL && strcmp(s, "done") == 0 ? " (done before)"
		                                            : "");
	}
}

/* The first step not done, and say so when an earlier run stopped. */
static size_t
resume_point(struct fo_ctx *c, const struct fo_state *st,
             const struct fo_step *steps, size_t n)
{
	size_t i = 0;
	const char *s;

	while (i < n && (s = step_state(st, steps[i].name)) != NULL &&
	       strcmp(s, "done") == 0)
		i++;
	for (size_t j = 0; j < i; j++)
		fprintf(c->opts->out, "%s: %s: done before\n", c->cmd,
		        steps[j].name);
	if (i < n && (s = step_state(st, steps[i].name)) != NULL)
		fprintf(c->opts->out, "%s: resuming at %s (%s before)\n",
		        c->cmd, steps[i].name,
		        strcmp(s, "failed") == 0 ? "failed" : "interrupted");
	return i;
}

static int
run_one(struct fo_ctx *c, struct fo_state *st, const struct fo_step *step)
{
	char done[1024] = "", why[1024] = "";
	uint64_t t0 = hs_now_mono_ns();
	double secs;
	int rc, src;

	if ((rc = step_record(st, step->name, "running", 0, "")) < 0) {
		fprintf(stderr, "hamnsync: %s: %s: %s\n", c->cmd, st->path,
		        hs_strerror(rc));
		return rc;
	}
	if ((rc = HS_FAILPOINT("failover.step")) == HS_OK)
		rc = step->run(c, done, sizeof(done), why, sizeof(why));
	else
		snprintf(why, sizeof(why), "failpoint: %s", hs_strerror(rc));
	secs = (double)(hs_now_mono_ns() - t0) / 1e9;
	if (rc < 0 && why[0] == '\0')
		snprintf(why, sizeof(why), "%s", hs_strerror(rc));
	src = step_record(st, step->name, rc < 0 ? "failed" : "done", secs,
	                  rc < 0 ? why : done);
	if (rc < 0) {
		fprintf(c->opts->out, "%s: %s: FAILED after %.2f s: %s\n",
		        c->cmd, step->name, secs, why);
		fprintf(stderr, "hamnsync: %s: %s: %s\n", c->cmd, step->name,
		        why);
		hs_log_warnx("%s: %s: failed after %.2f s: %s", c->cmd,
		             step->name, secs, why);
		return rc;
	}
	fprintf(c->opts->out, "%s: %s: done in %.2f s%s%s\n", c->cmd,
	        step->name, secs, done[0] ? ": " : "", done);
	hs_log_info("%s: %s: done in %.2f s%s%s", c->cmd, step->name, secs,
	            done[0] ? ": " : "", done);
	fflush(c->opts->out);
	if (src < 0) {
		fprintf(stderr, "hamnsync: %s: %s: %s\n", c->cmd, st->path,
		        hs_strerror(src));
		return src;
	}
	return HS_OK;
}

/* Every step done: kept for the record, and the next run starts afresh. */
static int
finish(struct fo_ctx *c, struct fo_state *st, uint64_t t0)
{
	char last[4096 + 16];
	int rc = HS_OK;

	snprintf(last, sizeof(last), "%s/%s-last.json", st->dir, c->cmd);
	if (rename(st->path, last) < 0 || fsync_dir(st->dir) < 0)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "hamnsync: %s: %s: %s\n", c->cmd, st->path,
		        hs_strerror(rc));
		return 1;
	}
	fprintf(c->opts->out, "%s: done in %.2f s\n", c->cmd,
	        (double)(hs_now_mono_ns() - t0) / 1e9);
	return 0;
}

/*
 * One failover command at a time on a node: two promotes (Pacemaker and
 * an operator, or a handover resumed while the first still runs) would
 * run the same step twice at once.  The lock is state_dir/promote/lock,
 * held (flock) until the process ends; it names the holder's pid.
 * Returns the fd, or HS_EBUSY with `why` naming the other command.
 */
static int
steps_lock(const struct fo_state *st, const char *cmd, char *why, size_t whylen)
{
	char path[4096 + 8], held[64] = "";
	ssize_t n;
	int fd, rc;

	if (mkdir(st->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/lock", st->dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		n = snprintf(held, sizeof(held), "%s %ld\n", cmd,
		             (long)getpid());
		if (ftruncate(fd, 0) == 0)
			(void)!pwrite(fd, held, (size_t)n, 0);
		return fd;
	}
	rc = errno == EWOULDBLOCK ? HS_EBUSY : -errno;
	if ((n = pread(fd, held, sizeof(held) - 1, 0)) > 0)
		held[n - (held[n - 1] == '\n')] = '\0';
	close(fd);
	if (rc == HS_EBUSY)
		snprintf(why, whylen,
		         "another failover command runs on this node (%s): "
		         "wait for it, or run this again once it ended",
		         held[0] ? held : "pid unknown");
	return rc;
}

int
fo_steps_run(const struct hs_conf *conf, const char *cmd,
             const struct fo_step *steps, size_t n, const struct fo_opts *o,
             void *arg)
{
	struct fo_state st;
	struct fo_ctx c;
	char why[1024] = "";
	uint64_t t0 = hs_now_mono_ns();
	size_t i;
	int rc, lockfd = -1;

	memset(&st, 0, sizeof(st));
	c.conf = conf;
	c.opts = o;
	c.cmd = cmd;
	c.arg = arg;
	if ((rc = state_paths(&st, conf, cmd)) < 0 ||
	    (!o->dry_run &&
	     (rc = lockfd = steps_lock(&st, cmd, why, sizeof(why))) < 0) ||
	    (rc = state_load(&st, why, sizeof(why))) < 0) {
		fprintf(stderr, "hamnsync: %s: %s\n", cmd,
		        why[0] ? why : hs_strerror(rc));
		json_decref(st.root);
		if (lockfd >= 0)
			close(lockfd);
		return exit_status(rc);
	}
	c.vars = json_object_get(st.root, "vars");
	if (o->dry_run) {
		dry_run(&c, &st, steps, n);
		json_decref(st.root);
		return 0;
	}
	for (i = resume_point(&c, &st, steps, n); i < n; i++) {
		if ((rc = run_one(&c, &st, &steps[i])) < 0)
			break;
	}
	if (i < n) {
		fprintf(o->out, "%s: stopped at %s; run it again to resume\n",
		        cmd, steps[i].name);
		rc = exit_status(rc);
	} else
		rc = finish(&c, &st, t0);
	json_decref(st.root);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

int
fo_steps_begun(const struct hs_conf *conf, const char *cmd)
{
	struct fo_state st;
	const char *k, *state;
	json_t *s;
	int begun = 0;

	if (state_paths(&st, conf, cmd) < 0)
		return 0;
	/* Unreadable: fo_steps_run is the one to say so. */
	if ((st.root = json_load_file(st.path, 0, NULL)) == NULL)
		return access(st.path, F_OK) == 0;
	json_object_foreach(json_object_get(st.root, "steps"), k, s)
	{
		state = json_string_value(json_object_get(s, "state"));
		begun |= state != NULL && strcmp(state, "done") == 0;
	}
	json_decref(st.root);
	return begun;
}

uint64_t
fo_var_u64(const struct fo_ctx *c, const char *key, uint64_t dflt)
{
	json_t *v = json_object_get(c->vars, key);

	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : dflt;
}

void
fo_var_set_u64(struct fo_ctx *c, const char *key, uint64_t v)
{
	json_object_set_new(c->vars, key, json_integer((json_int_t)v));
}

const char *
fo_var_str(const struct fo_ctx *c, const char *key)
{
	return json_string_value(json_object_get(c->vars, key));
}

void
fo_var_set_str(struct fo_ctx *c, const char *key, const char *v)
{
	json_object_set_new(c->vars, key, json_string(v));
}
