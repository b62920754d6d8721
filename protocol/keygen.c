/*
 * keygen.c - a node identity: an ECDSA P-256 key and a self-signed
 * certificate, valid for 10 years, whose subject CN and DNS name are the
 * node name.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"

#define KEYGEN_DAYS (10 * 365 + 3)

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok;
}

static X509 *
make_cert(EVP_PKEY *pk, const char *name)
{
	X509 *x = X509_new();
	X509_NAME *subj;
	ASN1_INTEGER *serial;
	unsigned char rnd[16];
	char san[PROTO_NODE_MAX + 8];
	BIGNUM *bn;

	if (x == NULL)
		return NULL;
	X509_set_version(x, 2);
	/* A random positive serial, as RFC 5280 asks. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto fail;
	rnd[0] &= 0x7f;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	if (serial == NULL)
		goto fail;
	X509_set_serialNumber(x, serial);
	ASN1_INTEGER_free(serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -60 * 60);
	X509_time_adj_ex(X509_getm_notAfter(x), KEYGEN_DAYS, 0, NULL);
	X509_set_pubkey(x, pk);
	subj = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
	                           (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, subj);
	snprintf(san, sizeof(san), "DNS:%s", name);
	if (!add_ext(x, NID_subject_alt_name, san) ||
	    !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, NID_subject_key_identifier, "hash"))
		goto fail;
	if (X509_sign(x, pk, EVP_sha256()) == 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Write with a PEM writer into a new file of `mode`; 0 or -errno. */
static int
write_pem(const char *path, mode_t mode, int force, EVP_PKEY *pk, X509 *x)
{
	int fd, ok;
	FILE *f;

	fd = open(path,
	          O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	              (force ? O_TRUNC : O_EXCL),
	          mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0 || (f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -errno;
	}
	ok = pk ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)
	        : PEM_write_X509(f, x);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -EIO;
}

int
proto_keygen(const char *dir, const char *name, int force, uint8_t fp[32],
             char *why, size_t whylen)
{
	char keyp[4200], crtp[4200];
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	unsigned int n = 32;
	struct stat st;
	int rc = HS_ETLS;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(keyp, sizeof(keyp), "%s/node.key", dir);
	snprintf(crtp, sizeof(crtp), "%s/node.crt", dir);
	if (!force && (stat(keyp, &st) == 0 || stat(crtp, &st) == 0)) {
		snprintf(why, whylen, "%s: exists; use --force to replace it",
		         stat(keyp, &st) == 0 ? keyp : crtp);
		return -EEXIST;
	}
	if ((pk = EVP_EC_gen("P-256")) == NULL ||
	    (x = make_cert(pk, name)) == NULL) {
		snprintf(why, whylen, "key generation failed");
		goto out;
	}
	if ((rc = write_pem(keyp, 0600, force, pk, NULL)) < 0) {
		snprintf(why, whylen, "%s: %s", keyp, strerror(-rc));
		goto out;
	}
	if ((rc = write_pem(crtp, 0644, force, NULL, x)) < 0) {
		snprintf(why, whylen, "%s: %s", crtp, strerror(-rc));
		goto out;
	}
	if (X509_digest(x, EVP_sha256(), fp, &n) != 1) {
		rc = HS_ETLS;
		goto out;
	}
	rc = HS_OK;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}
