/* error.c - one strerror for every hamnsync error code. */
#include <string.h>

#include "hs.h"

const char *
hs_strerror(int rc)
{
	switch (rc) {
	case HS_OK:
		return "success";
	case HS_WANT_READ:
		return "would block (read)";
	case HS_WANT_WRITE:
		return "would block (write)";
	case HS_EPROTO:
		return "malformed message from peer";
	case HS_ELIMIT:
		return "size past a hard limit";
	case HS_ECODEC:
		return "compression error";
	case HS_ETLS:
		return "TLS failure";
	case HS_ENOTFOUND:
		return "not found";
	case HS_ECONFIG:
		return "invalid configuration";
	case HS_EAUTH:
		return "peer not authenticated";
	case HS_EVERSION:
		return "incompatible protocol version";
	case HS_EBUSY:
		return "standby is busy with another session";
	case HS_ECONFINE:
		return "path escapes its confinement";
	case HS_EHASH:
		return "content hash mismatch";
	case HS_ECLOSED:
		return "connection closed by peer";
	case HS_EREFUSED:
		return "refused by peer";
	case HS_EINDEX:
		return "index damaged or unreadable";
	case HS_ETIMEOUT:
		return "peer timed out";
	case HS_ECHANGED:
		return "file changed while being read";
	case HS_EROLE:
		return "this node's role changed";
	}
	if (rc < 0 && rc > HS_EBASE)
		return strerror(-rc);
	return "unknown error";
}
