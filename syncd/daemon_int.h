/*
 * daemon_int.h - what both daemons (standby.c, primary.c) share: the pid
 * file lock and detaching.  Only syncd/ includes this.
 */
#ifndef DAEMON_INT_H
#define DAEMON_INT_H

/*
 * Lock state_dir/hamnsync.pid so two daemons never share a state_dir.
 * -EBUSY (logged with the holder's pid) when another one runs.
 */
int dmn_lock_pidfile(const char *state_dir, int *out);
/* Write our pid into the locked file. */
void dmn_write_pid(int fd);
/* Fork twice, new session, stdio to /dev/null. */
int dmn_detach(void);

#endif /* DAEMON_INT_H */
