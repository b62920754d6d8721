/*
 * standby.h - the standby: the daemon that listens for the primary,
 * serves one session at a time and applies what it sends beneath
 * target_root.  Internals: stdby_int.h.
 */
#ifndef STANDBY_H
#define STANDBY_H

#include "hs.h"
#include "proto.h"

/* ------------------------------------------------ standby: the daemon */

/*
 * Run the standby: listen, serve one primary at a time, apply under
 * target_root.  Returns when SIGTERM/SIGINT arrives (HS_OK) or on a fatal
 * start-up error (logged), or HS_EROLE once the control verb `role` found
 * the stored role primary (sessions stopped, children reaped, the pid
 * file handed over with hs_pidfile_handover): the caller runs the
 * primary next, in this process.  Answers the control verbs `fence` and
 * `role` (ctl.h) and probes (PROTO_HELLO_F_PROBE).  `conf_path` is
 * re-read on SIGHUP.  Takes ownership of `conf` and of `tls`, this node's
 * identity, which the caller loaded from `conf` before anything else.
 */
int stdby_run(const char *conf_path, struct hs_conf *conf,
              struct proto_tls *tls, int foreground);

#endif /* STANDBY_H */
