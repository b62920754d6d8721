/*
 * check_common.c - common/: the configuration parser (valid files, every
 * error path); number parsing, fingerprints, host:port, buffers and sizes;
 * and, in test builds (HS_FAILPOINTS), the failpoints: the parser of
 * HAMNSYNC_FAILPOINTS, the hit counts, the actions.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_aux.h"
#include "hs.h"

/* 64 hex digits, and the same bytes with colons and upper case. */
#define HEX1 "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
#define FP1 "sha256:" HEX1
#define FP2                                                                    \
	"SHA256:FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00:"              \
	"FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00"

static const uint8_t fp1_bytes[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
    0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
static const uint8_t fp2_bytes[32] = {
    0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55,
    0x44, 0x33, 0x22, 0x11, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa,
    0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00};

/* A valid [node], one key a line; whatever follows starts at line 9. */
#define L_NODE "[node]\n"                        /* 1 */
#define L_ROLE "role = primary\n"                /* 2 */
#define L_LISTEN "listen = 0.0.0.0:7873\n"       /* 3 */
#define L_PEER "peer = mn2:7873\n"               /* 4 */
#define L_CERT "cert = /etc/hamnsync/node.crt\n" /* 5 */
#define L_KEY "key = /etc/hamnsync/node.key\n"   /* 6 */
#define L_FP "peer_fingerprint = " FP1 "\n"      /* 7 */
#define L_NAME "name = mn1\n"                    /* 8 */
#define NODE_NONAME L_NODE L_ROLE L_LISTEN L_PEER L_CERT L_KEY L_FP
/* A valid [node] that does not depend on the host name. */
#define NODE NODE_NONAME L_NAME

static char tmpdir[64];
static char conf_path[128];

static void
dir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_common.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof(conf_path), "%s/hamnsync.conf", tmpdir);
}

static void
dir_teardown(void)
{
	ck_assert_int_eq(nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

static void
write_bytes(const char *text, size_t len)
{
	FILE *fp = fopen(conf_path, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(text, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

static int
load_text(const char *text, struct hs_conf **c, char *err, size_t errlen)
{
	write_bytes(text, strlen(text));
	return hs_conf_load(conf_path, c, err, errlen);
}

/* Load text that must be valid. */
static struct hs_conf *
load_ok(const char *text)
{
	struct hs_conf *c = NULL;
	char err[HS_ERRMSG_MAX];
	int rc;

	rc = load_text(text, &c, err, sizeof(err));
	ck_assert_msg(rc == HS_OK, "rc %d: %s", rc, err);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(err, "");
	return c;
}

/* Load text that must fail at `line` (0: no line) with `why` in the text. */
static void
load_bad(const char *name, const char *text, int line, const char *why)
{
	struct hs_conf *c = (struct hs_conf *)1;
	char err[HS_ERRMSG_MAX], want[256];
	int rc;

	rc = load_text(text, &c, err, sizeof(err));
	ck_assert_msg(rc == HS_ECONFIG, "%s: rc %d, want HS_ECONFIG (%s)", name,
	              rc, err);
	ck_assert_ptr_null(c);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", conf_path, line);
	else
		snprintf(want, sizeof(want), "%s: ", conf_path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	              "%s: message '%s' does not start with '%s'", name, err,
	              want);
	ck_assert_msg(strstr(err, why) != NULL,
	              "%s: message '%s' does not say '%s'", name, err, why);
	ck_assert_msg(
	    strchr(err, '\n') == NULL, "%s: '%s' is not one line", name,
	    err); /* A refused password is never repeated where logs keep it. */
	ck_assert_msg(strstr(err, "s3cret") == NULL, "%s: '%s' shows it", name,
	              err);
}

/* ------------------------------------------------------------ valid files */

/* The example of SPEC.md, comments included. */
static const char spec_example[] =
    "[node]\n"
    "name = mn1                      # default: the host name; also the "
    "name the peer's certificate must carry in CA mode\n"
    "role = primary                  # role at first start only; afterwards "
    "the index holds it (promote/rejoin change it)\n"
    "state_dir = /var/lib/hamnsync   # LMDB environment, control socket, "
    "pid file, dumps\n"
    "listen = 0.0.0.0:7873           # the standby listens here\n"
    "peer = mn2:7873                 # the primary connects here (set both "
    "keys on both nodes: roles swap)\n"
    "cert = /etc/hamnsync/node.crt   # this node's certificate (PEM)\n"
    "key = /etc/hamnsync/node.key    # its private key (PEM, mode 0600)\n"
    "peer_fingerprint = " FP1 "     # pinned peer certificate (repeat "
    "during a rotation), and/or:\n"
    "peer_fingerprint = " FP2 "\n"
    "ca = /etc/hamnsync/ca.crt       # a CA that signs both nodes' "
    "certificates\n"
    "target_root = /                 # standby: prefix under which "
    "replicated paths land\n"
    "max_delete_percent = 50         # hold back a deletion of more than "
    "this share of a path set's files\n"
    "heartbeat = 1s                  # the primary speaks at least this "
    "often\n"
    "peer_timeout = 10s              # silence after which the peer counts "
    "as gone\n"
    "bwlimit = 0                     # bytes per second on the wire, 0 = "
    "unlimited\n"
    "rescan_interval = 60s           # rescan of subtrees the watcher could "
    "not cover (watch limit)\n"
    "status_group = nagios           # may read status through the control "
    "socket; other verbs need root\n"
    "metrics_file = /var/lib/prometheus/node-exporter/hamnsync.prom   # "
    "optional Prometheus textfile\n"
    "\n"
    "[path credentials]              # one section per replicated set\n"
    "source = /etc/xcat/ca\n"
    "source = /etc/xcat/cert\n"
    "source = /etc/xcat/hostkeys\n"
    "source = /root/.xcat\n"
    "exclude = *.swp                 # glob, matched against the path "
    "relative to its source\n"
    "\n"
    "[path install]\n"
    "source = /install\n"
    "\n"
    "[path netconf]\n"
    "source = /etc/hosts             # single files work as sources\n"
    "source = /etc/resolv.conf\n"
    "\n"
    "[database xcatdb]\n"
    "type = sqlite                   # sqlite | postgresql | mysql | db2\n"
    "path = /etc/xcat                # sqlite: a database file or a "
    "directory of them\n"
    "# postgresql: dsn = host=/run/postgresql port=5432 dbname=xcatdb "
    "user=postgres\n"
    "# mysql:      dsn = \xe2\x80\xa6   db2: database = XCATDB, instance = "
    "xcatdb\n"
    "interval = 30s                  # snapshot at most this often, only "
    "when the DB changed\n"
    "restore = on-promote            # on-promote | continuous\n"
    "\n"
    "[failover]\n"
    "hostname = mn1                  # the identity the standby takes over\n"
    "service_address = 192.0.2.10/24 # address moved to the standby's "
    "cluster-facing NIC\n"
    "interface = eth1\n"
    "stop = systemctl stop xcatd     # run before takeover; repeated keys "
    "run in order\n"
    "regenerate = makedns -n\n"
    "regenerate = makedhcp -n\n"
    "regenerate = makedhcp -a\n"
    "regenerate = makeconservercf\n"
    "start = systemctl start xcatd\n"
    "step_timeout = 300s\n";

START_TEST(valid_spec_example)
{
	struct hs_conf *c = load_ok(spec_example);
	const struct hs_pathset *ps;
	const struct hs_database *db;
	const struct hs_failover *fo = &c->failover;

	ck_assert_str_eq(c->file, conf_path);
	ck_assert_str_eq(c->node_name, "mn1");
	ck_assert_int_eq(c->role, HS_ROLE_PRIMARY);
	ck_assert_str_eq(c->state_dir, "/var/lib/hamnsync");
	ck_assert_str_eq(c->listen, "0.0.0.0:7873");
	ck_assert_str_eq(c->peer, "mn2:7873");
	ck_assert_str_eq(c->cert, "/etc/hamnsync/node.crt");
	ck_assert_str_eq(c->key, "/etc/hamnsync/node.key");
	ck_assert_uint_eq(c->n_peer_fps, 2);
	ck_assert_mem_eq(c->peer_fps[0], fp1_bytes, 32);
	ck_assert_mem_eq(c->peer_fps[1], fp2_bytes, 32);
	ck_assert_str_eq(c->ca, "/etc/hamnsync/ca.crt");
	ck_assert_str_eq(c->target_root, "/");
	ck_assert_uint_eq(c->max_delete_percent, 50);
	ck_assert_uint_eq(c->heartbeat, 1);
	ck_assert_uint_eq(c->peer_timeout, 10);
	ck_assert_uint_eq(c->bwlimit, 0);
	ck_assert_uint_eq(c->rescan_interval, 60);
	ck_assert_str_eq(c->status_group, "nagios");
	ck_assert_str_eq(c->metrics_file,
	                 "/var/lib/prometheus/node-exporter/hamnsync.prom");

	ck_assert_uint_eq(c->n_sets, 4);
	ck_assert_str_eq(c->sets[3].name, "db:xcatdb");
	ck_assert_str_eq(c->sets[3].sources.v[0],
	                 "/var/lib/hamnsync/db/xcatdb");
	ck_assert_str_eq(c->sets[3].local.v[0], "/var/lib/hamnsync/db/xcatdb");
	ck_assert_str_eq(c->sets[0].local.v[3], "/root/.xcat");
	ps = &c->sets[0];
	ck_assert_str_eq(ps->name, "credentials");
	ck_assert_int_eq(ps->line, 21);
	ck_assert_uint_eq(ps->sources.n, 4);
	ck_assert_str_eq(ps->sources.v[0], "/etc/xcat/ca");
	ck_assert_str_eq(ps->sources.v[1], "/etc/xcat/cert");
	ck_assert_str_eq(ps->sources.v[2], "/etc/xcat/hostkeys");
	ck_assert_str_eq(ps->sources.v[3], "/root/.xcat");
	ck_assert_uint_eq(ps->excludes.n, 1);
	ck_assert_str_eq(ps->excludes.v[0], "*.swp");
	ps = &c->sets[1];
	ck_assert_str_eq(ps->name, "install");
	ck_assert_uint_eq(ps->sources.n, 1);
	ck_assert_str_eq(ps->sources.v[0], "/install");
	ck_assert_uint_eq(ps->excludes.n, 0);
	ps = &c->sets[2];
	ck_assert_str_eq(ps->name, "netconf");
	ck_assert_uint_eq(ps->sources.n, 2);
	ck_assert_str_eq(ps->sources.v[0], "/etc/hosts");
	ck_assert_str_eq(ps->sources.v[1], "/etc/resolv.conf");

	ck_assert_uint_eq(c->n_dbs, 1);
	db = &c->dbs[0];
	ck_assert_str_eq(db->name, "xcatdb");
	ck_assert_int_eq(db->type, HS_DB_SQLITE);
	ck_assert_str_eq(db->path, "/etc/xcat");
	ck_assert_ptr_null(db->dsn);
	ck_assert_ptr_null(db->database);
	ck_assert_ptr_null(db->instance);
	ck_assert_uint_eq(db->interval, 30);
	ck_assert_int_eq(db->restore, HS_RESTORE_ON_PROMOTE);
	ck_assert_int_eq(db->line, 35);

	ck_assert_int_eq(fo->present, 1);
	ck_assert_str_eq(fo->hostname, "mn1");
	ck_assert_str_eq(fo->service_address, "192.0.2.10/24");
	ck_assert_str_eq(fo->interface, "eth1");
	ck_assert_uint_eq(fo->stop.n, 1);
	ck_assert_str_eq(fo->stop.v[0], "systemctl stop xcatd");
	ck_assert_uint_eq(fo->regenerate.n, 4);
	ck_assert_str_eq(fo->regenerate.v[0], "makedns -n");
	ck_assert_str_eq(fo->regenerate.v[1], "makedhcp -n");
	ck_assert_str_eq(fo->regenerate.v[2], "makedhcp -a");
	ck_assert_str_eq(fo->regenerate.v[3], "makeconservercf");
	ck_assert_uint_eq(fo->start.n, 1);
	ck_assert_str_eq(fo->start.v[0], "systemctl start xcatd");
	ck_assert_uint_eq(fo->step_timeout, 300);

	ck_assert_ptr_eq(hs_conf_find_set(c, "install"), &c->sets[1]);
	ck_assert_ptr_eq(hs_conf_find_set(c, "netconf"), &c->sets[2]);
	ck_assert_ptr_null(hs_conf_find_set(c, "nosuch"));
	ck_assert_ptr_null(hs_conf_find_set(c, "Install"));
	hs_conf_free(c);
}
END_TEST

/* Only the required keys: every default. */
START_TEST(valid_defaults)
{
	struct hs_conf *c = load_ok(NODE);

	ck_assert_str_eq(c->node_name, "mn1");
	ck_assert_str_eq(c->state_dir, "/var/lib/hamnsync");
	ck_assert_str_eq(c->target_root, "/");
	ck_assert_uint_eq(c->n_peer_fps, 1);
	ck_assert_ptr_null(c->ca);
	ck_assert_uint_eq(c->max_delete_percent, 50);
	ck_assert_uint_eq(c->heartbeat, 1);
	ck_assert_uint_eq(c->peer_timeout, 10);
	ck_assert_uint_eq(c->bwlimit, 0);
	ck_assert_uint_eq(c->rescan_interval, 60);
	ck_assert_ptr_null(c->status_group);
	ck_assert_ptr_null(c->metrics_file);
	ck_assert_uint_eq(c->n_sets, 0);
	ck_assert_ptr_null(hs_conf_find_set(c, "install"));
	ck_assert_uint_eq(c->n_dbs, 0);
	ck_assert_int_eq(c->failover.present, 0);
	ck_assert_ptr_null(c->failover.hostname);
	ck_assert_uint_eq(c->failover.stop.n, 0);
	hs_conf_free(c);
}
END_TEST

/* Without `name`, the node takes the host name (if it is a valid name). */
START_TEST(valid_name_from_hostname)
{
	struct hs_conf *c = NULL;
	char host[256], err[HS_ERRMSG_MAX];
	size_t n;
	int rc, valid;

	memset(host, 0, sizeof(host));
	ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
	n = strlen(host);
	valid = n >= 1 && n <= 64 && strcmp(host, ".") != 0 &&
	        strcmp(host, "..") != 0 &&
	        strspn(host, "abcdefghijklmnopqrstuvwxyz"
	                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
	rc = load_text(NODE_NONAME, &c, err, sizeof(err));
	if (valid) {
		ck_assert_msg(rc == HS_OK, "%s", err);
		ck_assert_str_eq(c->node_name, host);
	} else {
		ck_assert_int_eq(rc, HS_ECONFIG);
		ck_assert_ptr_nonnull(strstr(err, "not a valid node name"));
	}
	hs_conf_free(c);
}
END_TEST

START_TEST(valid_all_values)
{
	struct hs_conf *c = load_ok(L_NODE "name = node-2_b.example\n"
	                                   "role = standby\n"
	                                   "state_dir = /srv/hs/state/\n"
	                                   "listen = [::]:7873\n"
	                                   "peer = [2001:db8::1]:7874\n"
	                                   "cert = /c.pem\n"
	                                   "key = /k.pem\n"
	                                   "ca = /ca.pem\n"
	                                   "target_root = /srv/standby/\n"
	                                   "max_delete_percent = 0\n"
	                                   "heartbeat = 2s\n"
	                                   "peer_timeout = 1m\n"
	                                   "bwlimit = 10M\n"
	                                   "rescan_interval = 1h\n"
	                                   "[failover]\n"
	                                   "service_address = 2001:db8::10/64\n"
	                                   "interface = bond0.100\n"
	                                   "step_timeout = 5m\n");

	ck_assert_str_eq(c->node_name, "node-2_b.example");
	ck_assert_int_eq(c->role, HS_ROLE_STANDBY);
	ck_assert_str_eq(c->state_dir, "/srv/hs/state");
	ck_assert_str_eq(c->listen, "[::]:7873");
	ck_assert_str_eq(c->peer, "[2001:db8::1]:7874");
	ck_assert_uint_eq(c->n_peer_fps, 0);
	ck_assert_str_eq(c->ca, "/ca.pem");
	ck_assert_str_eq(c->target_root, "/srv/standby");
	ck_assert_uint_eq(c->max_delete_percent, 0);
	ck_assert_uint_eq(c->heartbeat, 2);
	ck_assert_uint_eq(c->peer_timeout, 60);
	ck_assert_uint_eq(c->bwlimit, 10 * 1024 * 1024);
	ck_assert_uint_eq(c->rescan_interval, 3600);
	ck_assert_int_eq(c->failover.present, 1);
	ck_assert_ptr_null(c->failover.hostname);
	ck_assert_str_eq(c->failover.service_address, "2001:db8::10/64");
	ck_assert_str_eq(c->failover.interface, "bond0.100");
	ck_assert_uint_eq(c->failover.step_timeout, 300);
	hs_conf_free(c);
}
END_TEST

/* A node's copy of source P is target_root + P; a database's set is not. */
START_TEST(valid_local_paths)
{
	struct hs_conf *c = load_ok(NODE "target_root = /srv/standby/\n"
	                                 "state_dir = /var/lib/hs\n"
	                                 "[path conf]\n"
	                                 "source = /etc/xcat\n"
	                                 "source = /etc/hosts\n"
	                                 "[database lite]\n"
	                                 "type = sqlite\n"
	                                 "path = /var/db/site.sqlite\n");

	ck_assert_uint_eq(c->n_sets, 2);
	ck_assert_uint_eq(c->sets[0].local.n, 2);
	ck_assert_str_eq(c->sets[0].sources.v[0], "/etc/xcat");
	ck_assert_str_eq(c->sets[0].local.v[0], "/srv/standby/etc/xcat");
	ck_assert_str_eq(c->sets[0].local.v[1], "/srv/standby/etc/hosts");
	ck_assert_uint_eq(c->sets[1].local.n, 1);
	ck_assert_str_eq(c->sets[1].local.v[0], "/var/lib/hs/db/lite");
	hs_conf_free(c);
}
END_TEST

START_TEST(valid_limits)
{
	struct hs_conf *c = load_ok(
	    NODE "max_delete_percent = 100\n"
	         "heartbeat = 1\n"
	         "peer_timeout = 2\n"
	         "rescan_interval = 1\n"
	         "bwlimit = 1G\n"
	         "[path a]\n"
	         "source = /etc/xcat\n"
	         "[path b]\n"
	         "source = /etc/xcatdb\n" /* a sibling, not nested */
	         "source = /etc/xcat.d/\n"
	         "[path x1234567890123456789012345678901"
	         "23456789012345678901234567890123]\n" /* 64 characters */
	         "source = /x\n"
	         "[failover]\n"
	         "service_address = 10.0.0.1/32\n"
	         "own_address = 10.0.0.2/32\n"
	         "takeover_command = chdev -l en0 -a netaddr=10.0.0.1\n"
	         "takeover_command = chdev -l inet0 -a hostname=mn1\n"
	         "release_command = chdev -l en0 -a netaddr=10.0.0.2\n"
	         "step_timeout = 1\n");

	ck_assert_uint_eq(c->max_delete_percent, 100);
	ck_assert_uint_eq(c->peer_timeout, 2);
	ck_assert_uint_eq(c->rescan_interval, 1);
	ck_assert_uint_eq(c->bwlimit, 1024ull * 1024 * 1024);
	ck_assert_uint_eq(c->n_sets, 3);
	ck_assert_str_eq(c->failover.own_address, "10.0.0.2/32");
	ck_assert_uint_eq(c->failover.takeover_command.n, 2);
	ck_assert_str_eq(c->failover.takeover_command.v[1],
	                 "chdev -l inet0 -a hostname=mn1");
	ck_assert_uint_eq(c->failover.release_command.n, 1);
	ck_assert_str_eq(c->sets[1].sources.v[0], "/etc/xcatdb");
	ck_assert_str_eq(c->sets[1].sources.v[1], "/etc/xcat.d");
	ck_assert_uint_eq(strlen(c->sets[2].name), 64);
	ck_assert_uint_eq(c->failover.step_timeout, 1);
	hs_conf_free(c);
}
END_TEST

/* Sets beside or around a SQLite database that leave its files out. */
START_TEST(valid_sqlite_beside_sets)
{
	struct hs_conf *c = load_ok(
	    NODE
	    "[path credentials]\n"
	    "source = /etc/xcat/ca\n" /* inside the folder: no table there */
	    "[path srv-xcat]\n"
	    "source = /srv/xcat\n"
	    "exclude = *.sqlite*\n"
	    "[path etc]\n"
	    "source = /etc/opt\n"
	    "exclude = xcat/*.sqlite\n"
	    "exclude = xcat/*.sqlite-*\n"
	    "[database xcatdb]\n"
	    "type = sqlite\n"
	    "path = /etc/xcat\n"
	    "[database opt]\n"
	    "type = sqlite\n"
	    "path = /etc/opt/xcat\n"
	    "[database srv]\n"
	    "type = sqlite\n"
	    "path = /srv/xcat\n");

	ck_assert_ptr_nonnull(hs_conf_find_set(c, "srv-xcat"));
	ck_assert_uint_eq(c->n_dbs, 3);
	hs_conf_free(c);
}
END_TEST

START_TEST(valid_databases)
{
	struct hs_conf *c = load_ok(
	    NODE
	    "[database pg]\n"
	    "dsn = host=/run/postgresql port=5432 dbname=xcatdb user=postgres\n"
	    "type = postgresql\n"
	    "interval = 0\n"
	    "restore = continuous\n"
	    "timeout = 2m\n"
	    "[database my]\n"
	    "type = mysql\n"
	    "dsn = host=db;user=xcat\n"
	    "interval = 2m\n"
	    "[database big]\n"
	    "type = db2\n"
	    "database = XCATDB\n"
	    "instance = xcatdb\n"
	    "command_prefix = runuser -u xcatdb --\n"
	    "[database lite]\n"
	    "type = sqlite\n"
	    "path = /etc/xcat/site.sqlite\n"
	    "[path pg]\n" /* set and database names do not clash */
	    "source = /var/lib/pgsql\n");

	ck_assert_uint_eq(c->n_dbs, 4);
	ck_assert_str_eq(c->dbs[0].name, "pg");
	ck_assert_int_eq(c->dbs[0].type, HS_DB_POSTGRESQL);
	ck_assert_str_eq(
	    c->dbs[0].dsn,
	    "host=/run/postgresql port=5432 dbname=xcatdb user=postgres");
	ck_assert_uint_eq(c->dbs[0].interval, 0);
	ck_assert_int_eq(c->dbs[0].restore, HS_RESTORE_CONTINUOUS);
	ck_assert_uint_eq(c->dbs[0].timeout, 120);
	ck_assert_ptr_null(c->dbs[0].command_prefix);
	ck_assert_uint_eq(c->dbs[1].timeout, 300);
	ck_assert_int_eq(c->dbs[0].line, 9);
	ck_assert_int_eq(c->dbs[1].type, HS_DB_MYSQL);
	ck_assert_str_eq(c->dbs[1].dsn, "host=db;user=xcat");
	ck_assert_uint_eq(c->dbs[1].interval, 120);
	ck_assert_int_eq(c->dbs[1].restore, HS_RESTORE_ON_PROMOTE);
	ck_assert_int_eq(c->dbs[2].type, HS_DB_DB2);
	ck_assert_str_eq(c->dbs[2].database, "XCATDB");
	ck_assert_str_eq(c->dbs[2].instance, "xcatdb");
	ck_assert_str_eq(c->dbs[2].command_prefix, "runuser -u xcatdb --");
	ck_assert_ptr_null(c->dbs[2].dsn);
	ck_assert_uint_eq(c->dbs[2].interval, 30);
	ck_assert_int_eq(c->dbs[3].type, HS_DB_SQLITE);
	ck_assert_str_eq(c->dbs[3].path, "/etc/xcat/site.sqlite");
	/* The set of each database follows the [path] sets. */
	ck_assert_uint_eq(c->n_sets, 5);
	ck_assert_str_eq(c->sets[0].name, "pg");
	ck_assert_ptr_null(c->sets[0].db);
	ck_assert_str_eq(c->sets[1].name, "db:pg");
	ck_assert_ptr_eq(c->sets[1].db, &c->dbs[0]);
	ck_assert_uint_eq(c->sets[1].sources.n, 1);
	ck_assert_str_eq(c->sets[1].sources.v[0], "/var/lib/hamnsync/db/pg");
	ck_assert_uint_eq(c->sets[1].excludes.n, 0);
	ck_assert_int_eq(c->sets[1].line, 9);
	ck_assert_str_eq(c->sets[4].name, "db:lite");
	ck_assert_ptr_eq(c->sets[4].db, &c->dbs[3]);
	ck_assert_ptr_eq(hs_conf_find_set(c, "db:big"), &c->sets[3]);
	hs_conf_free(c);
}
END_TEST

/* An empty [failover] still says it is there; repeated keys keep order. */
START_TEST(valid_failover)
{
	struct hs_conf *c = load_ok(NODE "[failover]\n");

	ck_assert_int_eq(c->failover.present, 1);
	ck_assert_uint_eq(c->failover.step_timeout, 300);
	ck_assert_uint_eq(c->failover.stop.n, 0);
	hs_conf_free(c);

	c = load_ok(NODE "[failover]\n"
	                 "start = one\n"
	                 "stop = a\n"
	                 "start = two\n"
	                 "stop = b\n"
	                 "start = three\n");
	ck_assert_uint_eq(c->failover.stop.n, 2);
	ck_assert_str_eq(c->failover.stop.v[0], "a");
	ck_assert_str_eq(c->failover.stop.v[1], "b");
	ck_assert_uint_eq(c->failover.start.n, 3);
	ck_assert_str_eq(c->failover.start.v[0], "one");
	ck_assert_str_eq(c->failover.start.v[1], "two");
	ck_assert_str_eq(c->failover.start.v[2], "three");
	ck_assert_uint_eq(c->failover.regenerate.n, 0);
	hs_conf_free(c);
}
END_TEST

START_TEST(valid_free_null) { hs_conf_free(NULL); }
END_TEST

/* ----------------------------------------------------------- comments */

START_TEST(comments_everywhere)
{
	struct hs_conf *c =
	    load_ok("# a comment before everything\n"
	            "; and another kind\n"
	            "\n"
	            "   \t\n"
	            "  # an indented comment\n"
	            "[node]   # after a header\n"
	            "name = mn1   # after a value\n"
	            "role = primary\t; tab then semicolon\n"
	            "  listen = 0.0.0.0:7873\n" /* not a continuation */
	            "\tpeer\t=\tmn2:7873\t\n"
	            "cert=/etc/hamnsync/node.crt\n"
	            "key = /etc/hamnsync/node.key#not-a-comment\n"
	            "peer_fingerprint = " FP1 " #\n"
	            "status_group = a;b\n"
	            "  [path p]\n"
	            "source = /etc/xcat # after a path\n"
	            "exclude = *.swp#1\n"
	            "exclude = a # b # c\n"
	            "exclude = x=y\n"
	            "exclude = [ab]#\n"
	            "# the last line, without a newline\n"
	            "exclude = last");

	ck_assert_str_eq(c->node_name, "mn1");
	ck_assert_int_eq(c->role, HS_ROLE_PRIMARY);
	ck_assert_str_eq(c->listen, "0.0.0.0:7873");
	ck_assert_str_eq(c->peer, "mn2:7873");
	ck_assert_str_eq(c->cert, "/etc/hamnsync/node.crt");
	ck_assert_str_eq(c->key, "/etc/hamnsync/node.key#not-a-comment");
	ck_assert_uint_eq(c->n_peer_fps, 1);
	ck_assert_str_eq(c->status_group, "a;b");
	ck_assert_uint_eq(c->n_sets, 1);
	ck_assert_int_eq(c->sets[0].line, 15);
	ck_assert_str_eq(c->sets[0].sources.v[0], "/etc/xcat");
	ck_assert_uint_eq(c->sets[0].excludes.n, 5);
	ck_assert_str_eq(c->sets[0].excludes.v[0], "*.swp#1");
	ck_assert_str_eq(c->sets[0].excludes.v[1], "a");
	ck_assert_str_eq(c->sets[0].excludes.v[2], "x=y");
	ck_assert_str_eq(c->sets[0].excludes.v[3], "[ab]#");
	ck_assert_str_eq(c->sets[0].excludes.v[4], "last");
	hs_conf_free(c);
}
END_TEST

/* CRLF line ends and a UTF-8 byte order mark, as Windows editors write. */
START_TEST(comments_crlf_bom)
{
	struct hs_conf *c = load_ok("\xef\xbb\xbf[node]\r\n"
	                            "name = mn1 # x\r\n"
	                            "role = standby\r\n"
	                            "listen = 0.0.0.0:7873\r\n"
	                            "peer = mn2:7873\r\n"
	                            "cert = /c\r\n"
	                            "key = /k\r\n"
	                            "ca = /ca\r\n"
	                            "\r\n");

	ck_assert_str_eq(c->node_name, "mn1");
	ck_assert_int_eq(c->role, HS_ROLE_STANDBY);
	ck_assert_str_eq(c->ca, "/ca");
	hs_conf_free(c);
}
END_TEST

/* ---------------------------------------------------------- long lines */

/* NODE then "exclude = " + pad to a line of exactly `len` bytes. */
static char *
long_line_conf(size_t len)
{
	static const char head[] = NODE "[path p]\nsource = /p\n";
	static const char key[] = "exclude = ";
	size_t hl = strlen(head), kl = strlen(key);
	char *s = malloc(hl + len + 2);

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_gt(len, kl);
	memcpy(s, head, hl);
	memcpy(s + hl, key, kl);
	memset(s + hl + kl, 'x', len - kl);
	memcpy(s + hl + len, "\n", 2);
	return s;
}

START_TEST(lines_long_ok)
{
	static const size_t lens[] = {200, 4096, 8192};
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *text = long_line_conf(lens[i]);
		struct hs_conf *c = load_ok(text);

		ck_assert_uint_eq(strlen(c->sets[0].excludes.v[0]),
		                  lens[i] - strlen("exclude = "));
		hs_conf_free(c);
		free(text);
	}
}
END_TEST

START_TEST(lines_too_long)
{
	char *text = long_line_conf(8193);

	load_bad("8193 bytes", text, 11, "line too long");
	free(text);
}
END_TEST

START_TEST(lines_nul_byte)
{
	static const char text[] = NODE "ca = /m\0n1\n";
	struct hs_conf *c = (struct hs_conf *)1;
	char err[HS_ERRMSG_MAX], want[256];

	write_bytes(text, sizeof(text) - 1);
	ck_assert_int_eq(hs_conf_load(conf_path, &c, err, sizeof(err)),
	                 HS_ECONFIG);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "%s:9: NUL byte in line", conf_path);
	ck_assert_str_eq(err, want);
}
END_TEST

/* --------------------------------------------------------------- errors */

struct bad_case {
	const char *name;
	const char *text;
	int line; /* 0: the message names no line */
	const char *why;
};

static const struct bad_case bad_cases[] = {
    /* syntax */
    {"empty file", "", 0, "missing [node] section"},
    {"only comments", "# nothing\n\n; here\n", 0, "missing [node] section"},
    {"no node", "[path a]\nsource = /a\n", 0, "missing [node] section"},
    {"key first", "role = primary\n" NODE, 1, "key 'role' outside any section"},
    {"no equals", NODE "source /install\n", 9, "malformed line"},
    {"no key", NODE " = x\n", 9, "missing key before '='"},
    {"colon", NODE "ca: /ca\n", 9, "malformed line"},
    {"header unclosed", "[node\n", 1, "malformed section header"},
    {"header junk", "[node] x\n", 1, "malformed section header"},
    {"header glued comment", "[node]#x\n", 1, "malformed section header"},
    {"header empty", NODE "[]\n", 9, "unknown section '[]'"},
    {"unknown section", NODE "[nodes]\n", 9, "unknown section '[nodes]'"},
    {"section case", NODE "[Failover]\n", 9, "unknown section"},
    {"path no name", NODE "[path]\n", 9, "section [path] needs a name"},
    {"path blank name", NODE "[path   ]\n", 9, "section [path] needs a name"},
    {"database no name", NODE "[database]\n", 9,
     "section [database] needs a name"},
    {"node with name", "[node mn1]\n", 1, "section [node] takes no name"},
    {"failover with name", NODE "[failover x]\n", 9,
     "section [failover] takes no name"},
    {"path name slash", NODE "[path a/b]\n", 9, "invalid name 'a/b'"},
    {"path name space", NODE "[path a b]\n", 9, "invalid name 'a b'"},
    {"path name dotdot", NODE "[path ..]\n", 9, "invalid name '..'"},
    {"path name 65",
     NODE "[path x1234567890123456789012345678901"
          "234567890123456789012345678901239]\n",
     9, "invalid name"},
    {"database name bad", NODE "[database x*]\n", 9, "invalid name 'x*'"},
    {"dup node", NODE "[node]\n", 9,
     "duplicate section [node] (first at line 1)"},
    {"dup failover", NODE "[failover]\n[failover]\n", 10,
     "duplicate section [failover] (first at line 9)"},
    {"dup path", NODE "[path a]\nsource = /a\n[path a]\n", 11,
     "duplicate section [path a] (first at line 9)"},
    {"dup database",
     NODE "[database d]\ntype = sqlite\npath = /d\n[database d]\n", 12,
     "duplicate section [database d] (first at line 9)"},
    {"unknown node key", NODE "lisen = 0.0.0.0:1\n", 9,
     "unknown key 'lisen' in [node]"},
    {"key case", NODE "Name = mn1\n", 9, "unknown key 'Name' in [node]"},
    {"unknown path key", NODE "[path a]\nsource = /a\nsources = /b\n", 11,
     "unknown key 'sources' in [path a]"},
    {"unknown db key", NODE "[database d]\ntype = sqlite\nfile = /d\n", 11,
     "unknown key 'file' in [database d]"},
    {"dsn password",
     NODE "[database d]\ntype = postgresql\n"
          "dsn = host=/run/postgresql user=x password=s3cret\n",
     11,
     "'dsn' in [database d] holds a password: put it in the server's own "
     "file instead, ~/.pgpass for postgresql or an option file named by "
     "defaults_file= for mysql"},
    {"dsn password first",
     NODE "[database d]\ntype = mysql\n"
          "dsn = PASSWORD = s3cret user=x\n",
     11, "holds a password"},
    {"db timeout 0",
     NODE "[database d]\ntype = sqlite\npath = /d\n"
          "timeout = 0\n",
     12, "invalid value '0' for 'timeout' in [database d]"},
    {"unknown failover key", NODE "[failover]\nips = 10.0.0.1/24\n", 10,
     "unknown key 'ips' in [failover]"},
    {"empty value", NODE "ca =\n", 9, "missing value for 'ca' in [node]"},
    {"empty value comment", NODE "ca =   # none\n", 9,
     "missing value for 'ca'"},
    {"empty source", NODE "[path a]\nsource =\n", 10,
     "missing value for 'source' in [path a]"},
    {"dup role",
     L_NODE L_ROLE "role = standby\n" L_LISTEN L_PEER L_CERT L_KEY L_FP, 3,
     "duplicate key 'role' in [node] (first at line 2)"},
    {"dup name", L_NODE "name = a\nname = b\n", 3, "duplicate key 'name'"},
    {"dup ca", NODE "ca = /a\nca = /a\n", 10, "duplicate key 'ca'"},
    {"dup type", NODE "[database d]\ntype = sqlite\ntype = sqlite\n", 11,
     "duplicate key 'type' in [database d]"},
    {"dup hostname", NODE "[failover]\nhostname = a\nhostname = b\n", 11,
     "duplicate key 'hostname' in [failover]"},
    {"dup step_timeout",
     NODE "[failover]\nstep_timeout = 1\n"
          "step_timeout = 1\n",
     11, "duplicate key 'step_timeout'"},

    /* [node]: required keys, at the header line */
    {"no role", L_NODE L_LISTEN L_PEER L_CERT L_KEY L_FP, 1,
     "missing required key 'role' in [node]"},
    {"no listen", L_NODE L_ROLE L_PEER L_CERT L_KEY L_FP, 1,
     "missing required key 'listen'"},
    {"no peer", L_NODE L_ROLE L_LISTEN L_CERT L_KEY L_FP, 1,
     "missing required key 'peer'"},
    {"no cert", L_NODE L_ROLE L_LISTEN L_PEER L_KEY L_FP, 1,
     "missing required key 'cert'"},
    {"no key", L_NODE L_ROLE L_LISTEN L_PEER L_CERT L_FP, 1,
     "missing required key 'key'"},
    {"no trust", "# x\n" L_NODE L_ROLE L_LISTEN L_PEER L_CERT L_KEY, 2,
     "needs 'peer_fingerprint' or 'ca'"},
    {"empty node then path", L_NODE "[path a]\nsource = /a\n", 1,
     "missing required key 'role'"},

    /* [node]: values */
    {"name slash", L_NODE "name = mn/1\n", 2,
     "invalid value 'mn/1' for 'name' in [node]"},
    {"name 65",
     L_NODE "name = x1234567890123456789012345678901"
            "234567890123456789012345678901239\n",
     2, "for 'name'"},
    {"role", L_NODE "role = master\n" L_LISTEN L_PEER L_CERT L_KEY L_FP, 2,
     "invalid value 'master' for 'role' in [node]: expected primary or "
     "standby"},
    {"role case", L_NODE "role = Primary\n" L_LISTEN L_PEER L_CERT L_KEY L_FP,
     2, "for 'role'"},
    {"state_dir relative", NODE "state_dir = var/lib/hamnsync\n", 9,
     "invalid value 'var/lib/hamnsync' for 'state_dir' in [node]: must be "
     "an absolute path"},
    {"state_dir dotdot", NODE "state_dir = /var/../tmp\n", 9,
     "'..' components"},
    {"listen no port",
     L_NODE L_ROLE "listen = 0.0.0.0\n" L_PEER L_CERT L_KEY L_FP, 3,
     "invalid value '0.0.0.0' for 'listen'"},
    {"listen port 0", L_NODE L_ROLE "listen = h:0\n" L_PEER L_CERT L_KEY L_FP,
     3, "for 'listen'"},
    {"listen port big",
     L_NODE L_ROLE "listen = h:65536\n" L_PEER L_CERT L_KEY L_FP, 3,
     "for 'listen'"},
    {"listen bare v6",
     L_NODE L_ROLE "listen = ::1:7873\n" L_PEER L_CERT L_KEY L_FP, 3,
     "for 'listen'"},
    {"peer no host", L_NODE L_ROLE L_LISTEN "peer = :7873\n" L_CERT L_KEY L_FP,
     4, "invalid value ':7873' for 'peer'"},
    {"peer bracket",
     L_NODE L_ROLE L_LISTEN "peer = [::1]7873\n" L_CERT L_KEY L_FP, 4,
     "for 'peer'"},
    {"cert relative",
     L_NODE L_ROLE L_LISTEN L_PEER "cert = node.crt\n" L_KEY L_FP, 5,
     "invalid value 'node.crt' for 'cert' in [node]: must be an "
     "absolute path"},
    {"key relative", L_NODE L_ROLE L_LISTEN L_PEER L_CERT "key = ./k\n" L_FP, 6,
     "for 'key'"},
    {"fp short", NODE "peer_fingerprint = sha256:0011\n", 9,
     "invalid value 'sha256:0011' for 'peer_fingerprint'"},
    {"fp long", NODE "peer_fingerprint = " FP1 "00\n", 9,
     "for 'peer_fingerprint'"},
    {"fp no prefix", NODE "peer_fingerprint = " HEX1 "\n", 9,
     "expected sha256: and 64 hex digits"},
    {"fp not hex",
     NODE "peer_fingerprint = sha256:zz112233445566778899aabbcc"
          "ddeeff0123456789abcdeffedcba9876543210\n",
     9, "for 'peer_fingerprint'"},
    {"fp md5", NODE "peer_fingerprint = md5:00112233445566778899aabbccddeeff\n",
     9, "for 'peer_fingerprint'"},
    {"ca relative", NODE "ca = ca.crt\n", 9, "for 'ca'"},
    {"target_root relative", NODE "target_root = srv\n", 9,
     "for 'target_root'"},
    {"target_root dotdot", NODE "target_root = /srv/../etc\n", 9,
     "for 'target_root'"},
    {"target_root double slash", NODE "target_root = /srv//x\n", 9,
     "for 'target_root'"},
    {"percent 101", NODE "max_delete_percent = 101\n", 9,
     "invalid value '101' for 'max_delete_percent' in [node]: expected a "
     "whole number from 0 to 100"},
    {"percent negative", NODE "max_delete_percent = -1\n", 9,
     "for 'max_delete_percent'"},
    {"percent sign", NODE "max_delete_percent = 50%\n", 9,
     "for 'max_delete_percent'"},
    {"heartbeat 0", NODE "heartbeat = 0\n", 9,
     "invalid value '0' for 'heartbeat' in [node]: must be at least 1s"},
    {"heartbeat unit", NODE "heartbeat = 1d\n", 9,
     "for 'heartbeat' in [node]: expected a duration"},
    {"heartbeat ms", NODE "heartbeat = 500ms\n", 9, "for 'heartbeat'"},
    {"heartbeat space", NODE "heartbeat = 1 s\n", 9, "for 'heartbeat'"},
    {"heartbeat huge", NODE "heartbeat = 5000000000\n", 9,
     "for 'heartbeat' in [node]: too long"},
    {"heartbeat overflow", NODE "heartbeat = 99999999999999999999h\n", 9,
     "for 'heartbeat'"},
    {"peer_timeout 0", NODE "peer_timeout = 0s\n", 9,
     "for 'peer_timeout' in [node]: must be at least 1s"},
    {"peer_timeout = heartbeat", NODE "peer_timeout = 1\n", 9,
     "peer_timeout (1s) must be longer than heartbeat (1s)"},
    {"heartbeat > default timeout", NODE "heartbeat = 20s\n", 9,
     "peer_timeout (10s) must be longer than heartbeat (20s)"},
    {"timeout < heartbeat", NODE "peer_timeout = 5\nheartbeat = 1m\n", 9,
     "peer_timeout (5s) must be longer than heartbeat (60s)"},
    {"bwlimit unit", NODE "bwlimit = 10MB\n", 9,
     "invalid value '10MB' for 'bwlimit'"},
    {"bwlimit lower", NODE "bwlimit = 10m\n", 9, "for 'bwlimit'"},
    {"bwlimit negative", NODE "bwlimit = -1\n", 9, "for 'bwlimit'"},
    {"rescan 0", NODE "rescan_interval = 0\n", 9,
     "for 'rescan_interval' in [node]: must be at least 1s"},
    {"metrics relative", NODE "metrics_file = hamnsync.prom\n", 9,
     "for 'metrics_file' in [node]: must be an absolute path"},

    /* [path NAME] */
    {"path no source", NODE "[path a]\nexclude = *.swp\n", 9,
     "[path a] has no 'source'"},
    {"path empty at end", NODE "[path a]\n", 9, "[path a] has no 'source'"},
    {"path empty then next", NODE "[path a]\n\n[path b]\nsource = /b\n", 9,
     "[path a] has no 'source'"},
    {"source relative", NODE "[path a]\nsource = etc/xcat\n", 10,
     "invalid value 'etc/xcat' for 'source' in [path a]: must be an "
     "absolute path"},
    {"source root", NODE "[path a]\nsource = /\n", 10,
     "'/' cannot be a source"},
    {"source root slashes", NODE "[path a]\nsource = //\n", 10, "for 'source'"},
    {"source dotdot", NODE "[path a]\nsource = /etc/../root\n", 10,
     "empty, '.' and '..' components are not allowed"},
    {"source dot", NODE "[path a]\nsource = /etc/./xcat\n", 10,
     "'..' components"},
    {"source trailing dotdot", NODE "[path a]\nsource = /etc/..\n", 10,
     "'..' components"},
    {"source empty component", NODE "[path a]\nsource = /etc//xcat\n", 10,
     "'..' components"},
    {"source two trailing", NODE "[path a]\nsource = /etc/xcat//\n", 10,
     "'..' components"},
    {"source dup", NODE "[path a]\nsource = /etc/xcat\nsource = /etc/xcat\n",
     11, "duplicate source '/etc/xcat' in [path a]"},
    {"source dup slash",
     NODE "[path a]\nsource = /etc/xcat\n"
          "source = /etc/xcat/\n",
     11, "duplicate source '/etc/xcat'"},
    {"source nested same set",
     NODE "[path a]\nsource = /etc/xcat\n"
          "source = /etc/xcat/ca\n",
     11, "source '/etc/xcat/ca' overlaps source '/etc/xcat' of the same"},
    {"source equal other set",
     NODE "[path a]\nsource = /install\n"
          "[path b]\nsource = /install\n",
     12, "source '/install' is also a source of [path a]"},
    {"source inside other set",
     NODE "[path a]\nsource = /etc/xcat\n"
          "[path b]\nsource = /etc/xcat/ca\n",
     12, "source '/etc/xcat/ca' is inside source '/etc/xcat' of [path a]"},
    {"source contains other set",
     NODE "[path a]\nsource = /etc/xcat/ca\n"
          "[path b]\nsource = /etc\n",
     12, "source '/etc' contains source '/etc/xcat/ca' of [path a]"},

    /* [database NAME] */
    {"path holds a snapshot folder",
     NODE "[path s]\nsource = /var/lib/hamnsync\n"
          "[database d]\ntype = sqlite\npath = /d\n",
     9,
     "source '/var/lib/hamnsync' of [path s] overlaps "
     "/var/lib/hamnsync/db/d, the snapshot folder of [database d]"},
    {"db no type", NODE "[database d]\npath = /d\n", 9,
     "missing required key 'type' in [database d]"},
    {"db empty", NODE "[database d]\n", 9, "missing required key 'type'"},
    {"db bad type", NODE "[database d]\ntype = oracle\n", 10,
     "invalid value 'oracle' for 'type' in [database d]: expected sqlite, "
     "postgresql, mysql or db2"},
    {"sqlite no path", NODE "[database d]\ntype = sqlite\n", 9,
     "missing required key 'path' for type sqlite in [database d]"},
    {"sqlite dsn", NODE "[database d]\ntype = sqlite\npath = /d\ndsn = x\n", 12,
     "key 'dsn' does not apply to type sqlite in [database d]"},
    {"sqlite dsn first",
     NODE "[database d]\ndsn = x\npath = /d\n"
          "type = sqlite\n",
     10, "key 'dsn' does not apply to type sqlite"},
    {"sqlite path relative", NODE "[database d]\ntype = sqlite\npath = d\n", 11,
     "invalid value 'd' for 'path' in [database d]: must be an "
     "absolute path"},
    {"sqlite shipped raw",
     NODE "[path etc-xcat]\nsource = /etc/xcat\n"
          "[database xcatdb]\ntype = sqlite\npath = /etc/xcat\n",
     9,
     "set etc-xcat ships the live SQLite files of database xcatdb raw: "
     "add exclude = *.sqlite*"},
    {"sqlite wal shipped raw",
     NODE "[database xcatdb]\ntype = sqlite\npath = /etc/xcat\n"
          "[path etc-xcat]\nsource = /etc/xcat\nexclude = *.sqlite\n"
          "exclude = *.sqlite-journal\n",
     12, "set etc-xcat ships the live SQLite files of database xcatdb raw"},
    {"sqlite file inside a source",
     NODE "[path etc]\nsource = /etc\nexclude = *.swp\n"
          "[database site]\ntype = sqlite\n"
          "path = /etc/xcat/site.sqlite\n",
     9, "set etc ships the live SQLite files of database site raw"},
    {"sqlite only one table excluded",
     NODE "[path etc]\nsource = /etc\nexclude = site.sqlite*\n"
          "[database x]\ntype = sqlite\npath = /etc/xcat\n",
     9, "set etc ships the live SQLite files of database x raw"},
    {"postgresql no dsn", NODE "[database d]\ntype = postgresql\n", 9,
     "missing required key 'dsn' for type postgresql"},
    {"postgresql path",
     NODE "[database d]\ntype = postgresql\ndsn = x\n"
          "path = /d\n",
     12, "key 'path' does not apply to type postgresql"},
    {"mysql no dsn", NODE "[database d]\ntype = mysql\n", 9,
     "missing required key 'dsn' for type mysql"},
    {"mysql instance",
     NODE "[database d]\ntype = mysql\ninstance = i\n"
          "dsn = x\n",
     11, "key 'instance' does not apply to type mysql"},
    {"db2 no database", NODE "[database d]\ntype = db2\ninstance = i\n", 9,
     "missing required key 'database' for type db2"},
    {"db2 no instance", NODE "[database d]\ntype = db2\ndatabase = D\n", 9,
     "missing required key 'instance' for type db2"},
    {"db2 dsn",
     NODE "[database d]\ntype = db2\ndatabase = D\ninstance = i\n"
          "dsn = x\n",
     13, "key 'dsn' does not apply to type db2"},
    {"db interval",
     NODE "[database d]\ntype = sqlite\npath = /d\n"
          "interval = soon\n",
     12, "invalid value 'soon' for 'interval' in [database d]"},
    {"db restore",
     NODE "[database d]\ntype = sqlite\npath = /d\n"
          "restore = always\n",
     12, "expected on-promote or continuous"},

    /* [failover] */
    {"hostname space", NODE "[failover]\nhostname = mn 1\n", 10,
     "invalid value 'mn 1' for 'hostname' in [failover]"},
    {"address without interface",
     NODE "[failover]\nservice_address = 192.0.2.10/24\n", 9,
     "service_address and own_address need interface"},
    {"own address no prefix", NODE "[failover]\nown_address = 192.0.2.11\n", 10,
     "invalid value '192.0.2.11' for 'own_address'"},
    {"address no prefix", NODE "[failover]\nservice_address = 192.0.2.10\n", 10,
     "invalid value '192.0.2.10' for 'service_address'"},
    {"address prefix 33",
     NODE "[failover]\n"
          "service_address = 192.0.2.10/33\n",
     10, "for 'service_address'"},
    {"address prefix 0", NODE "[failover]\nservice_address = 192.0.2.10/0\n",
     10, "for 'service_address'"},
    {"address prefix empty",
     NODE "[failover]\n"
          "service_address = 192.0.2.10/\n",
     10, "for 'service_address'"},
    {"address prefix junk",
     NODE "[failover]\n"
          "service_address = 192.0.2.10/24x\n",
     10, "for 'service_address'"},
    {"address octet", NODE "[failover]\nservice_address = 192.0.2.300/24\n", 10,
     "for 'service_address'"},
    {"address name", NODE "[failover]\nservice_address = mn1/24\n", 10,
     "for 'service_address'"},
    {"address no addr", NODE "[failover]\nservice_address = /24\n", 10,
     "for 'service_address'"},
    {"address v6 prefix",
     NODE "[failover]\n"
          "service_address = 2001:db8::10/129\n",
     10, "expected an IPv4 or IPv6 address with a /prefix"},
    {"interface long", NODE "[failover]\ninterface = abcdefghijklmnop\n", 10,
     "invalid value 'abcdefghijklmnop' for 'interface'"},
    {"interface slash", NODE "[failover]\ninterface = eth/1\n", 10,
     "for 'interface'"},
    {"step_timeout 0", NODE "[failover]\nstep_timeout = 0\n", 10,
     "for 'step_timeout' in [failover]: must be at least 1s"},
    {"step_timeout unit", NODE "[failover]\nstep_timeout = 5d\n", 10,
     "for 'step_timeout'"},
    {"failover empty cmd", NODE "[failover]\nregenerate = \n", 10,
     "missing value for 'regenerate' in [failover]"},
};

START_TEST(errors_table)
{
	const struct bad_case *bc = &bad_cases[_i];

	load_bad(bc->name, bc->text, bc->line, bc->why);
}
END_TEST

/* A value too long to quote is cut, so the reason is still there. */
START_TEST(errors_long_value_clipped)
{
	static const char head[] = NODE "ca = ";
	size_t hl = strlen(head), vl = 4000;
	char *text = malloc(hl + vl + 2);

	ck_assert_ptr_nonnull(text);
	memcpy(text, head, hl);
	memset(text + hl, 'x', vl);
	memcpy(text + hl + vl, "\n", 2);
	load_bad("long ca", text, 9, "...' for 'ca' in [node]: must be an");
	free(text);
}
END_TEST

/* A small or absent error buffer is never overrun. */
START_TEST(errors_small_buffer)
{
	struct hs_conf *c = NULL;
	char err[16];

	memset(err, 'Z', sizeof(err));
	ck_assert_int_eq(load_text("[nodes]\n", &c, err, 8), HS_ECONFIG);
	ck_assert_uint_eq(strlen(err), 7);
	ck_assert_int_eq(err[8], 'Z');
	ck_assert_int_eq(load_text("[nodes]\n", &c, NULL, 0), HS_ECONFIG);
	ck_assert_ptr_null(c);
}
END_TEST

/* ------------------------------------------------------------------ I/O */

START_TEST(io_missing_file)
{
	struct hs_conf *c = (struct hs_conf *)1;
	char err[HS_ERRMSG_MAX], path[256], want[512];

	snprintf(path, sizeof(path), "%s/nosuch.conf", tmpdir);
	ck_assert_int_eq(hs_conf_load(path, &c, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(io_directory)
{
	struct hs_conf *c = (struct hs_conf *)1;
	char err[HS_ERRMSG_MAX], want[512];
	int rc;

	rc = hs_conf_load(tmpdir, &c, err, sizeof(err));
	ck_assert_int_eq(rc, -EISDIR);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "%s: %s", tmpdir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(io_unreadable)
{
	struct hs_conf *c = (struct hs_conf *)1;
	char err[HS_ERRMSG_MAX], want[512];

	if (geteuid() == 0)
		return; /* root reads it anyway */
	write_bytes(NODE, strlen(NODE));
	ck_assert_int_eq(chmod(conf_path, 0), 0);
	ck_assert_int_eq(hs_conf_load(conf_path, &c, err, sizeof(err)),
	                 -EACCES);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof(want), "%s: %s", conf_path, strerror(EACCES));
	ck_assert_str_eq(err, want);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc;

	tc = tcase_create("valid");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, valid_spec_example);
	tcase_add_test(tc, valid_defaults);
	tcase_add_test(tc, valid_name_from_hostname);
	tcase_add_test(tc, valid_all_values);
	tcase_add_test(tc, valid_limits);
	tcase_add_test(tc, valid_local_paths);
	tcase_add_test(tc, valid_databases);
	tcase_add_test(tc, valid_sqlite_beside_sets);
	tcase_add_test(tc, valid_failover);
	tcase_add_test(tc, valid_free_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("comments");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, comments_everywhere);
	tcase_add_test(tc, comments_crlf_bom);
	suite_add_tcase(s, tc);

	tc = tcase_create("lines");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, lines_long_ok);
	tcase_add_test(tc, lines_too_long);
	tcase_add_test(tc, lines_nul_byte);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_loop_test(tc, errors_table, 0,
	                    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, errors_long_value_clipped);
	tcase_add_test(tc, errors_small_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("io");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, io_missing_file);
	tcase_add_test(tc, io_directory);
	tcase_add_test(tc, io_unreadable);
	suite_add_tcase(s, tc);
	return s;
}

/* ====================================================== util.c */

#define SENTINEL 0xdeadbeefdeadbeefull

/* --------------------------------------------------------- hs_parse_u64 */

struct u64_case {
	const char *s;
	uint64_t min, max;
	int rc;
	uint64_t want;
};

static const struct u64_case u64_cases[] = {
    {"0", 0, 10, HS_OK, 0},
    {"10", 0, 10, HS_OK, 10},
    {"5", 5, 5, HS_OK, 5},
    {"007", 0, 10, HS_OK, 7},
    {"18446744073709551615", 0, UINT64_MAX, HS_OK, UINT64_MAX},
    {"11", 0, 10, HS_ECONFIG, 0},
    {"4", 5, 10, HS_ECONFIG, 0},
    {"18446744073709551616", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"99999999999999999999999", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"", 0, 10, HS_ECONFIG, 0},
    {"-1", 0, UINT64_MAX, HS_ECONFIG, 0},
    {"+1", 0, 10, HS_ECONFIG, 0},
    {" 1", 0, 10, HS_ECONFIG, 0},
    {"1 ", 0, 10, HS_ECONFIG, 0},
    {"1x", 0, 10, HS_ECONFIG, 0},
    {"0x10", 0, 100, HS_ECONFIG, 0},
    {"1.5", 0, 10, HS_ECONFIG, 0},
    {"abc", 0, 10, HS_ECONFIG, 0},
};

START_TEST(u64_table)
{
	const struct u64_case *tc = &u64_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_u64(tc->s, tc->min, tc->max, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
	else
		ck_assert_uint_eq(out, SENTINEL); /* untouched on failure */
}
END_TEST

START_TEST(u64_null)
{
	uint64_t out = SENTINEL;

	ck_assert_int_eq(hs_parse_u64(NULL, 0, 10, &out), HS_ECONFIG);
	ck_assert_uint_eq(out, SENTINEL);
}
END_TEST

/* ------------------------------------------------ durations and sizes */

struct scaled_case {
	const char *s;
	int rc;
	uint64_t want;
};

static const struct scaled_case duration_cases[] = {
    {"0", HS_OK, 0},
    {"5", HS_OK, 5},
    {"5s", HS_OK, 5},
    {"2m", HS_OK, 120},
    {"1h", HS_OK, 3600},
    {"90m", HS_OK, 5400},
    {"18446744073709551615s", HS_OK, UINT64_MAX},
    {"5124095576030431h", HS_OK, 5124095576030431ull * 3600},
    {"5124095576030432h", HS_ECONFIG, 0}, /* * 3600 overflows */
    {"307445734561825861m", HS_ECONFIG, 0},
    {"", HS_ECONFIG, 0},
    {"s", HS_ECONFIG, 0},
    {"5x", HS_ECONFIG, 0},
    {"5S", HS_ECONFIG, 0},
    {"5M", HS_ECONFIG, 0},
    {"1d", HS_ECONFIG, 0},
    {"5ms", HS_ECONFIG, 0},
    {"-1s", HS_ECONFIG, 0},
    {" 5", HS_ECONFIG, 0},
    {"5 ", HS_ECONFIG, 0},
    {"5 s", HS_ECONFIG, 0},
    {"1.5h", HS_ECONFIG, 0},
};

START_TEST(duration_table)
{
	const struct scaled_case *tc = &duration_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_duration(tc->s, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

static const struct scaled_case size_cases[] = {
    {"0", HS_OK, 0},
    {"1", HS_OK, 1},
    {"1K", HS_OK, 1024},
    {"2M", HS_OK, 2ull * 1024 * 1024},
    {"3G", HS_OK, 3ull * 1024 * 1024 * 1024},
    {"1024K", HS_OK, 1024ull * 1024},
    {"17179869183G", HS_OK, 17179869183ull << 30},
    {"17179869184G", HS_ECONFIG, 0}, /* 2^34 GiB = 2^64 */
    {"1k", HS_ECONFIG, 0},
    {"1m", HS_ECONFIG, 0},
    {"1T", HS_ECONFIG, 0},
    {"1KB", HS_ECONFIG, 0},
    {"1KiB", HS_ECONFIG, 0},
    {"K", HS_ECONFIG, 0},
    {"", HS_ECONFIG, 0},
    {"-1K", HS_ECONFIG, 0},
    {"1 K", HS_ECONFIG, 0},
    {"1s", HS_ECONFIG, 0},
};

START_TEST(size_table)
{
	const struct scaled_case *tc = &size_cases[_i];
	uint64_t out = SENTINEL;
	int rc;

	rc = hs_parse_size(tc->s, &out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

/* ------------------------------------------------------- fingerprints */

#define HEX "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"

static const uint8_t fp_bytes[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
    0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

struct fp_case {
	const char *s;
	int rc;
};

static const struct fp_case fp_cases[] = {
    {"sha256:" HEX, HS_OK},
    {"SHA256:" HEX, HS_OK},
    {"sha256:00112233445566778899AABBCCDDEEFF0123456789ABCDEF"
     "FEDCBA9876543210",
     HS_OK},
    /* what `openssl x509 -fingerprint -sha256` prints, colons and all */
    {"sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
     "01:23:45:67:89:AB:CD:EF:FE:DC:BA:98:76:54:32:10",
     HS_OK},
    {"sha256:" HEX "0", HS_ECONFIG},  /* 65 digits */
    {"sha256:" HEX "00", HS_ECONFIG}, /* 66 digits */
    {"sha256:0112233445566778899aabbccddeeff"
     "0123456789abcdeffedcba9876543210",
     HS_ECONFIG}, /* 63 digits */
    {"sha256:", HS_ECONFIG},
    {"sha256", HS_ECONFIG},
    {"", HS_ECONFIG},
    {HEX, HS_ECONFIG}, /* no prefix */
    {"sha1:" HEX, HS_ECONFIG},
    {"sha256: " HEX, HS_ECONFIG},
    {"sha256:" HEX " ", HS_ECONFIG},
    {"sha256:g0112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210",
     HS_ECONFIG},
};

START_TEST(fp_table)
{
	const struct fp_case *tc = &fp_cases[_i];
	uint8_t out[32];
	int rc;

	memset(out, 0xa5, sizeof(out));
	rc = hs_parse_fingerprint(tc->s, out);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_mem_eq(out, fp_bytes, sizeof(fp_bytes));
}
END_TEST

START_TEST(fp_format_roundtrip)
{
	char buf[72];
	uint8_t back[32];

	hs_format_fingerprint(fp_bytes, buf, sizeof(buf));
	ck_assert_str_eq(buf, "sha256:" HEX);
	ck_assert_int_eq(hs_parse_fingerprint(buf, back), HS_OK);
	ck_assert_mem_eq(back, fp_bytes, sizeof(fp_bytes));
}
END_TEST

START_TEST(fp_format_small_buffer)
{
	char buf[80];

	memset(buf, 'Z', sizeof(buf));
	hs_format_fingerprint(fp_bytes, buf, 71);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(buf[1], 'Z');
	memset(buf, 'Z', sizeof(buf));
	hs_format_fingerprint(fp_bytes, buf, 0);
	ck_assert_int_eq(buf[0], 'Z');
}
END_TEST

/* -------------------------------------------------------- host:port */

struct hp_case {
	const char *s;
	size_t hostlen;
	int rc;
	const char *host;
	uint16_t port;
};

static const struct hp_case hp_cases[] = {
    {"mn2:7873", 256, HS_OK, "mn2", 7873},
    {"0.0.0.0:1", 256, HS_OK, "0.0.0.0", 1},
    {"mn1.cluster.example:65535", 256, HS_OK, "mn1.cluster.example", 65535},
    {"[::1]:7873", 256, HS_OK, "::1", 7873},
    {"[::]:7873", 256, HS_OK, "::", 7873},
    {"[2001:db8::1]:22", 256, HS_OK, "2001:db8::1", 22},
    {"abc:1", 4, HS_OK, "abc", 1}, /* exactly fits */
    {"abc:1", 3, HS_ECONFIG, NULL, 0},
    {"[::1]:1", 3, HS_ECONFIG, NULL, 0},
    {"host:0", 256, HS_ECONFIG, NULL, 0},
    {"host:65536", 256, HS_ECONFIG, NULL, 0},
    {"host:", 256, HS_ECONFIG, NULL, 0},
    {"host:-1", 256, HS_ECONFIG, NULL, 0},
    {"host:78x", 256, HS_ECONFIG, NULL, 0},
    {"host: 78", 256, HS_ECONFIG, NULL, 0},
    {":7873", 256, HS_ECONFIG, NULL, 0},
    {"host", 256, HS_ECONFIG, NULL, 0},
    {"", 256, HS_ECONFIG, NULL, 0},
    {"::1:7873", 256, HS_ECONFIG, NULL, 0}, /* bare v6 is ambiguous */
    {"[::1]7873", 256, HS_ECONFIG, NULL, 0},
    {"[::1]", 256, HS_ECONFIG, NULL, 0},
    {"[::1:7873", 256, HS_ECONFIG, NULL, 0},
    {"[]:7873", 256, HS_ECONFIG, NULL, 0},
};

START_TEST(hp_table)
{
	const struct hp_case *tc = &hp_cases[_i];
	char host[257]; /* one past the largest hostlen, to see overruns */
	uint16_t port = 4242;
	int rc;

	ck_assert_uint_lt(tc->hostlen, sizeof(host));
	memset(host, 'Z', sizeof(host));
	rc = hs_split_hostport(tc->s, host, tc->hostlen, &port);
	ck_assert_msg(rc == tc->rc, "'%s': rc %d, want %d", tc->s, rc, tc->rc);
	if (tc->rc == HS_OK) {
		ck_assert_str_eq(host, tc->host);
		ck_assert_uint_eq(port, tc->port);
	} else {
		ck_assert_uint_eq(port, 4242);
	}
	/* never written past hostlen */
	ck_assert_int_eq(host[tc->hostlen], 'Z');
}
END_TEST

/* ---------------------------------------------------------- buffers */

START_TEST(buf_init_empty)
{
	struct hs_buf b;

	memset(&b, 0x5a, sizeof(b));
	hs_buf_init(&b, 1000);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 1000);
	ck_assert_int_eq(hs_buf_append(&b, "x", 0), HS_OK);
	ck_assert_uint_eq(b.len, 0);
	hs_buf_free(&b);
	hs_buf_free(&b); /* twice is harmless */
}
END_TEST

START_TEST(buf_append_grows)
{
	struct hs_buf b;
	size_t i;

	hs_buf_init(&b, 5000);
	for (i = 0; i < 5000; i++) {
		uint8_t ch = (uint8_t)(i % 251);

		ck_assert_int_eq(hs_buf_append(&b, &ch, 1), HS_OK);
		ck_assert_uint_le(b.len, b.cap);
		ck_assert_uint_le(b.cap, b.max);
	}
	ck_assert_uint_eq(b.len, 5000);
	for (i = 0; i < 5000; i++)
		ck_assert_uint_eq(b.data[i], i % 251);
	hs_buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 5000);
}
END_TEST

START_TEST(buf_limit)
{
	struct hs_buf b;
	uint8_t block[300];

	memset(block, 7, sizeof(block));
	hs_buf_init(&b, 600);
	ck_assert_int_eq(hs_buf_append(&b, block, 300), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, block, 300), HS_OK);
	ck_assert_uint_eq(b.len, 600);
	ck_assert_uint_le(b.cap, 600);
	/* past max: refused, and the buffer is unchanged */
	ck_assert_int_eq(hs_buf_append(&b, block, 1), HS_ELIMIT);
	ck_assert_int_eq(hs_buf_reserve(&b, 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 600);
	ck_assert_uint_eq(b.data[599], 7);
	ck_assert_int_eq(hs_buf_reserve(&b, 0), HS_OK);
	hs_buf_free(&b);
}
END_TEST

START_TEST(buf_reserve_overflow)
{
	struct hs_buf b;

	hs_buf_init(&b, SIZE_MAX);
	ck_assert_int_eq(hs_buf_append(&b, "abc", 3), HS_OK);
	/* len + need wraps around */
	ck_assert_int_eq(hs_buf_reserve(&b, SIZE_MAX), HS_ELIMIT);
	ck_assert_int_eq(hs_buf_reserve(&b, SIZE_MAX - 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 3);
	ck_assert_mem_eq(b.data, "abc", 3);
	hs_buf_free(&b);
}
END_TEST

/* A buffer smaller than the first allocation still holds at most max. */
START_TEST(buf_small_max)
{
	struct hs_buf b;

	hs_buf_init(&b, 0);
	ck_assert_int_eq(hs_buf_append(&b, "", 0), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, "a", 1), HS_ELIMIT);
	hs_buf_free(&b);

	hs_buf_init(&b, 10);
	ck_assert_int_eq(hs_buf_append(&b, "0123456789", 10), HS_OK);
	ck_assert_int_eq(hs_buf_append(&b, "a", 1), HS_ELIMIT);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_mem_eq(b.data, "0123456789", 10);
	hs_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------- size math */

struct sz_case {
	size_t a, b;
	int rc;
	size_t want;
};

static const struct sz_case add_cases[] = {
    {0, 0, HS_OK, 0},
    {1, 2, HS_OK, 3},
    {SIZE_MAX, 0, HS_OK, SIZE_MAX},
    {SIZE_MAX - 1, 1, HS_OK, SIZE_MAX},
    {SIZE_MAX, 1, HS_ELIMIT, 0},
    {1, SIZE_MAX, HS_ELIMIT, 0},
    {SIZE_MAX, SIZE_MAX, HS_ELIMIT, 0},
};

static const struct sz_case mul_cases[] = {
    {0, SIZE_MAX, HS_OK, 0},
    {SIZE_MAX, 1, HS_OK, SIZE_MAX},
    {3, 7, HS_OK, 21},
    {SIZE_MAX / 2, 2, HS_OK, SIZE_MAX - 1},
    {SIZE_MAX / 2 + 1, 2, HS_ELIMIT, 0},
    {SIZE_MAX, SIZE_MAX, HS_ELIMIT, 0},
    {(size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4),
     HS_ELIMIT, 0},
};

START_TEST(size_add_table)
{
	const struct sz_case *tc = &add_cases[_i];
	size_t out = 12345;

	ck_assert_int_eq(hs_size_add(tc->a, tc->b, &out), tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

START_TEST(size_mul_table)
{
	const struct sz_case *tc = &mul_cases[_i];
	size_t out = 12345;

	ck_assert_int_eq(hs_size_mul(tc->a, tc->b, &out), tc->rc);
	if (tc->rc == HS_OK)
		ck_assert_uint_eq(out, tc->want);
}
END_TEST

/* ------------------------------------------------------------- misc */

START_TEST(misc_role_name)
{
	ck_assert_str_eq(hs_role_name(HS_ROLE_PRIMARY), "primary");
	ck_assert_str_eq(hs_role_name(HS_ROLE_STANDBY), "standby");
	ck_assert_str_eq(hs_role_name(HS_ROLE_NONE), "none");
}
END_TEST

START_TEST(misc_write_all)
{
	uint8_t out[3000], in[3000];
	size_t got = 0;
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	memset(out, 0x3c, sizeof(out));
	ck_assert_int_eq(hs_write_all(fds[1], out, sizeof(out)), 0);
	ck_assert_int_eq(hs_write_all(fds[1], out, 0), 0);
	close(fds[1]);
	while (got < sizeof(in)) {
		ssize_t n = read(fds[0], in + got, sizeof(in) - got);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	ck_assert_mem_eq(in, out, sizeof(out));
	close(fds[0]);
}
END_TEST

START_TEST(misc_write_all_errors)
{
	int fds[2];

	ck_assert_int_eq(hs_write_all(-1, "x", 1), -EBADF);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[0]);
	ck_assert_int_eq(hs_write_all(fds[1], "x", 1), -EPIPE);
	close(fds[1]);
}
END_TEST

START_TEST(misc_mono_and_strdup)
{
	uint64_t a = hs_now_mono_ns(), b = hs_now_mono_ns();
	char *s = hs_xstrdup("hamnsync");

	ck_assert_uint_ge(b, a);
	ck_assert_str_eq(s, "hamnsync");
	free(s);
}
END_TEST

START_TEST(misc_backoff)
{
	uint64_t cur = 0;
	int i;

	/* The reconnect backoff: 200 ms, doubling, capped at 10 s. */
	cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 200);
	cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 400);
	for (i = 0; i < 10; i++)
		cur = hs_backoff_next(cur, 200, 10000);
	ck_assert_uint_eq(cur, 10000);
	ck_assert_uint_eq(hs_backoff_next(6000, 200, 10000), 10000);
	ck_assert_uint_eq(hs_backoff_next(199, 200, 10000), 200);
	ck_assert_uint_eq(hs_backoff_next(UINT64_MAX, 1, UINT64_MAX),
	                  UINT64_MAX);
	ck_assert_uint_eq(hs_backoff_next(UINT64_MAX / 2, 1, UINT64_MAX),
	                  UINT64_MAX - 1);
}
END_TEST

/* hs_escape: what a name shows as on one log line. */
static const struct {
	const char *in, *out;
} esc_cases[] = {
    {"plain/name.txt", "plain/name.txt"},
    {"a\nb", "a\\#012b"},
    {"tab\there", "tab\\#011here"},
    {"del\x7f", "del\\#177"},
    {"caf\xc3\xa9", "caf\xc3\xa9"},               /* valid UTF-8 stays */
    {"bad\xff", "bad\\#377"},                     /* not UTF-8 */
    {"cut\xc3", "cut\\#303"},                     /* a sequence cut short */
    {"over\xc0\xaf", "over\\#300\\#257"},         /* overlong '/' */
    {"sur\xed\xa0\x80", "sur\\#355\\#240\\#200"}, /* a surrogate */
    {"back\\#012", "back\\#134#012"},             /* reads back unambiguously */
    {"back\\slash", "back\\slash"},
};

START_TEST(misc_escape)
{
	char out[64];

	ck_assert_str_eq(hs_escape(esc_cases[_i].in, out, sizeof(out)),
	                 esc_cases[_i].out);
}
END_TEST

START_TEST(misc_escape_cut)
{
	char out[8];

	/* A cut never splits an escape or a character. */
	ck_assert_str_eq(hs_escape("abc\n\n", out, sizeof(out)), "abc");
	ck_assert_str_eq(hs_escape("abcdef\xc3\xa9", out, sizeof(out)),
	                 "abcdef");
	ck_assert_str_eq(hs_escape("", out, sizeof(out)), "");
}
END_TEST

static Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("u64");
	tcase_add_loop_test(tc, u64_table, 0, (int)N_ELEM(u64_cases));
	tcase_add_test(tc, u64_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("duration");
	tcase_add_loop_test(tc, duration_table, 0, (int)N_ELEM(duration_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("size");
	tcase_add_loop_test(tc, size_table, 0, (int)N_ELEM(size_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("fingerprint");
	tcase_add_loop_test(tc, fp_table, 0, (int)N_ELEM(fp_cases));
	tcase_add_test(tc, fp_format_roundtrip);
	tcase_add_test(tc, fp_format_small_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostport");
	tcase_add_loop_test(tc, hp_table, 0, (int)N_ELEM(hp_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("buf");
	tcase_add_test(tc, buf_init_empty);
	tcase_add_test(tc, buf_append_grows);
	tcase_add_test(tc, buf_limit);
	tcase_add_test(tc, buf_reserve_overflow);
	tcase_add_test(tc, buf_small_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("sizemath");
	tcase_add_loop_test(tc, size_add_table, 0, (int)N_ELEM(add_cases));
	tcase_add_loop_test(tc, size_mul_table, 0, (int)N_ELEM(mul_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, misc_role_name);
	tcase_add_test(tc, misc_write_all);
	tcase_add_test(tc, misc_write_all_errors);
	tcase_add_test(tc, misc_mono_and_strdup);
	tcase_add_test(tc, misc_backoff);
	tcase_add_loop_test(tc, misc_escape, 0, (int)N_ELEM(esc_cases));
	tcase_add_test(tc, misc_escape_cut);
	suite_add_tcase(s, tc);
	return s;
}

/* ============================================ failpoint.c (test builds) */

/* A release build has no failpoints (hs.h): nothing to test there. */
#ifdef HS_FAILPOINTS

#define HITS_MAX 6

/*
 * A spec that parses, and what its failpoint `name` then returns on each
 * of its first hits (0, or -errno; no crash here).
 */
struct good_case {
	const char *spec;
	const char *name;
	int want[HITS_MAX];
};

static const struct good_case good_cases[] = {
    {"apply.before_write=err(EIO)",
     "apply.before_write",
     {-EIO, -EIO, -EIO, -EIO, -EIO, -EIO}},
    {"apply.before_rename=err(ENOSPC)",
     "apply.before_rename",
     {-ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC}},
    {"apply.before_write=1*err(ENOSPC)",
     "apply.before_write",
     {-ENOSPC, 0, 0, 0, 0, 0}},
    {"apply.before_write=err(EIO)@3",
     "apply.before_write",
     {0, 0, -EIO, -EIO, -EIO, -EIO}},
    {"apply.before_write=1*err(EIO)@3",
     "apply.before_write",
     {0, 0, -EIO, 0, 0, 0}},
    {"apply.before_write=2*err(EDQUOT)@2",
     "apply.before_write",
     {0, -EDQUOT, -EDQUOT, 0, 0, 0}},
    {"apply.before_write=sleep(0)", "apply.before_write", {0, 0, 0, 0, 0, 0}},
    /* several at once: each its own */
    {"express.send=1*crash,primary.index_commit=err(EIO)",
     "primary.index_commit",
     {-EIO, -EIO, -EIO, -EIO, -EIO, -EIO}},
    {"primary.index_commit=1*err(EIO),express.ack=err(ENOSPC)@2",
     "express.ack",
     {0, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC, -ENOSPC}},
    /* a failpoint not named is not armed */
    {"apply.before_write=err(EIO)", "apply.after_write", {0, 0, 0, 0, 0, 0}},
    /* empty: nothing armed */
    {"", "apply.before_write", {0, 0, 0, 0, 0, 0}},
};

START_TEST(good_table)
{
	const struct good_case *tc = &good_cases[_i];
	char err[HS_ERRMSG_MAX] = "";
	int k, rc;

	rc = hs_fp_arm(tc->spec, err, sizeof(err));
	ck_assert_msg(rc == HS_OK, "'%s': refused: %s", tc->spec, err);
	for (k = 0; k < HITS_MAX; k++) {
		rc = hs_fp_hit(tc->name);
		ck_assert_msg(rc == tc->want[k],
		              "'%s': hit %d of %s: %d, want %d", tc->spec,
		              k + 1, tc->name, rc, tc->want[k]);
	}
	hs_fp_arm("", err, sizeof(err));
}
END_TEST

/* A spec refused, and a word its one-line error must name. */
struct fp_bad_case {
	const char *spec;
	const char *names;
};

static const struct fp_bad_case fp_bad_cases[] = {
    {"nosuch=crash", "unknown failpoint \"nosuch\""},
    {"apply.before=crash", "unknown failpoint \"apply.before\""},
    {"APPLY.BEFORE_WRITE=crash", "unknown failpoint"},
    {"apply.before_write", "not NAME=ACTION"},
    {"=crash", "unknown failpoint \"\""},
    {"apply.before_write=", "bad action \"\""},
    {"apply.before_write=explode", "bad action \"explode\""},
    {"apply.before_write=crash()", "bad action \"crash()\""},
    {"apply.before_write=err", "bad action \"err\""},
    {"apply.before_write=err()", "unknown errno name"},
    {"apply.before_write=err(EFOO)", "unknown errno name"},
    {"apply.before_write=err(eio)", "unknown errno name"},
    {"apply.before_write=err(EIO", "bad action \"err(EIO\""},
    {"apply.before_write=sleep()", "milliseconds"},
    {"apply.before_write=sleep(abc)", "milliseconds"},
    {"apply.before_write=sleep(-1)", "milliseconds"},
    {"apply.before_write=sleep(600001)", "milliseconds"},
    {"apply.before_write=0*crash", "count before '*'"},
    {"apply.before_write=x*crash", "count before '*'"},
    {"apply.before_write=*crash", "count before '*'"},
    {"apply.before_write=crash@0", "hit after '@'"},
    {"apply.before_write=crash@", "hit after '@'"},
    {"apply.before_write=crash@x", "hit after '@'"},
    {"apply.before_write=1*crash,", "empty item"},
    {",apply.before_write=crash", "empty item"},
    {"apply.before_write=crash,,express.ack=crash", "empty item"},
    {"apply.before_write=crash,apply.before_write=err(EIO)",
     "apply.before_write is named twice"},
    {"apply.before_write=crash,nosuch=err(EIO)", "\"nosuch\""},
};

START_TEST(bad_table)
{
	const struct fp_bad_case *tc = &fp_bad_cases[_i];
	char err[HS_ERRMSG_MAX] = "";
	int rc;

	/* A refused spec arms nothing: not even its good part. */
	hs_fp_arm("", err, sizeof(err));
	rc = hs_fp_arm(tc->spec, err, sizeof(err));
	ck_assert_msg(rc == HS_ECONFIG, "'%s': rc %d, want HS_ECONFIG",
	              tc->spec, rc);
	ck_assert_msg(strstr(err, tc->names) != NULL,
	              "'%s': error \"%s\" does not say \"%s\"", tc->spec, err,
	              tc->names);
	ck_assert_msg(strchr(err, '\n') == NULL, "'%s': error of two lines",
	              tc->spec);
	ck_assert_int_eq(hs_fp_hit("apply.before_write"), 0);
}
END_TEST

START_TEST(bad_too_long)
{
	char spec[HS_FP_SPEC_MAX + 64], err[HS_ERRMSG_MAX] = "";
	size_t n = 0;

	while (n + 30 < sizeof(spec))
		n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s",
		                      "apply.before_write=crash,");
	ck_assert_int_eq(hs_fp_arm(spec, err, sizeof(err)), HS_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

/* A refused spec changes nothing: what was armed before stays armed. */
START_TEST(bad_keeps_previous)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(hs_fp_arm("express.ack=err(EIO)", err, sizeof(err)),
	                 HS_OK);
	ck_assert_int_eq(hs_fp_arm("express.ack=boom", err, sizeof(err)),
	                 HS_ECONFIG);
	ck_assert_int_eq(hs_fp_hit("express.ack"), -EIO);
	ck_assert_int_eq(hs_fp_arm("", err, sizeof(err)), HS_OK);
	ck_assert_int_eq(hs_fp_hit("express.ack"), 0);
}
END_TEST

/* The system-call form: -1 and errno. */
START_TEST(hit_sys)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(
	    hs_fp_arm("apply.before_delete=1*err(ENOSPC)", err, sizeof(err)),
	    HS_OK);
	errno = 0;
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_delete"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_delete"), 0);
}
END_TEST

/* sleep(MS) waits at least MS and then lets the call go on. */
START_TEST(hit_sleep)
{
	char err[HS_ERRMSG_MAX];
	uint64_t t0;

	ck_assert_int_eq(
	    hs_fp_arm("express.send=1*sleep(50)", err, sizeof(err)), HS_OK);
	t0 = hs_now_mono_ns();
	ck_assert_int_eq(hs_fp_hit("express.send"), 0);
	ck_assert_uint_ge(hs_now_mono_ns() - t0, 50000000ull);
	t0 = hs_now_mono_ns();
	ck_assert_int_eq(hs_fp_hit("express.send"), 0);
	ck_assert_uint_lt(hs_now_mono_ns() - t0, 50000000ull);
}
END_TEST

/* Hits of forked processes count with the parent's: fire once is once. */
START_TEST(hits_shared_across_fork)
{
	char err[HS_ERRMSG_MAX];
	pid_t pid;
	int st;

	ck_assert_int_eq(
	    hs_fp_arm("standby.before_ack=1*err(EIO)@2", err, sizeof(err)),
	    HS_OK);
	ck_assert_int_eq(hs_fp_hit("standby.before_ack"), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(hs_fp_hit("standby.before_ack") == -EIO ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(hs_fp_hit("standby.before_ack"), 0);
}
END_TEST

/*
 * crash: SIGKILL for the process that hits it and for the daemon that
 * forked it.  Here a child plays the daemon, and its child hits.
 */
START_TEST(crash_kills_daemon)
{
	char err[HS_ERRMSG_MAX];
	pid_t daemon;
	int st;

	ck_assert_int_eq(
	    hs_fp_arm("apply.before_rename=1*crash", err, sizeof(err)), HS_OK);
	daemon = fork();
	ck_assert_int_ge(daemon, 0);
	if (daemon == 0) {
		pid_t child;

		hs_fp_daemon_pid(getpid());
		if ((child = fork()) == 0) {
			hs_fp_hit_sys("apply.before_rename");
			_exit(3); /* not reached */
		}
		waitpid(child, &st, 0);
		_exit(4); /* not reached either: killed meanwhile */
	}
	ck_assert_int_eq(waitpid(daemon, &st, 0), daemon);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	              "the daemon was not killed: status %#x", st);
	/* Fired once: a restarted daemon sharing nothing would start over,
	 * but these counters say it fired. */
	ck_assert_int_eq(hs_fp_hit_sys("apply.before_rename"), 0);
}
END_TEST

/* A name at a call site that the list lacks is a bug: abort at once. */
START_TEST(unknown_site_aborts)
{
	char err[HS_ERRMSG_MAX];

	ck_assert_int_eq(hs_fp_arm("express.ack=crash", err, sizeof(err)),
	                 HS_OK);
	hs_fp_hit("express.nosuch");
}
END_TEST

static Suite *
failpoint_suite(void)
{
	Suite *s = suite_create("failpoint");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, good_table, 0, (int)N_ELEM(good_cases));
	tcase_add_loop_test(tc, bad_table, 0, (int)N_ELEM(fp_bad_cases));
	tcase_add_test(tc, bad_too_long);
	tcase_add_test(tc, bad_keeps_previous);
	suite_add_tcase(s, tc);

	tc = tcase_create("fire");
	tcase_add_test(tc, hit_sys);
	tcase_add_test(tc, hit_sleep);
	tcase_add_test(tc, hits_shared_across_fork);
	tcase_add_test(tc, crash_kills_daemon);
	tcase_add_test_raise_signal(tc, unknown_site_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

#endif /* HS_FAILPOINTS */

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_add_suite(sr, util_suite());
#ifdef HS_FAILPOINTS
	srunner_add_suite(sr, failpoint_suite());
#endif
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
