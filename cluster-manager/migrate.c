/*
 * wgcni-cluster-manager migrate: a stopped SQLite cluster manager's state
 * into etcd (migrate.h says what is copied, and how it never overwrites).
 *
 * Order: options; the state directory's lock (the SQLite manager must be
 * stopped, and cannot start while we copy); cluster.db read-only, every
 * row checked against the flags; etcd checked empty under the prefix; the
 * copy, transaction by transaction; on a failure the copied keys deleted
 * again. Output goes to stdout (what was done) and stderr (why not): this
 * is a command an operator runs, not a daemon.
 */
#include "config.h"
#include "migrate.h"
#include "store_etcd_keys.h"

#include "db.h"
#include "etcd.h"
#include "ipnet.h"
#include "log.h"
#include "names.h"
#include "opts.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "wgcni-cluster-manager migrate"

/* The schema migrate reads: cluster.db at user_version 3 (state.c's
 * cm_migrations). An older one is upgraded by starting the SQLite cluster
 * manager of this version once; a newer one is not ours to read. */
#define CM_MIGRATE_SCHEMA 3

enum {
	OPT_FROM = 256,
	OPT_TO,
	OPT_STATE_DIR,
	OPT_ETCD_ENDPOINTS,
	OPT_ETCD_PREFIX,
	OPT_ETCD_CA,
	OPT_ETCD_CERT,
	OPT_ETCD_KEY,
	OPT_CLUSTER_CIDR,
	OPT_NODE_PREFIX_LENGTH,
	OPT_NODE_PREFIX_LENGTH_V6,
	OPT_DRY_RUN,
	OPT_HELP = 'h',
};

static const struct option mig_options[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "to", required_argument, NULL, OPT_TO },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "etcd-endpoints", required_argument, NULL, OPT_ETCD_ENDPOINTS },
	{ "etcd-prefix", required_argument, NULL, OPT_ETCD_PREFIX },
	{ "etcd-ca-file", required_argument, NULL, OPT_ETCD_CA },
	{ "etcd-cert-file", required_argument, NULL, OPT_ETCD_CERT },
	{ "etcd-key-file", required_argument, NULL, OPT_ETCD_KEY },
	{ "cluster-cidr", required_argument, NULL, OPT_CLUSTER_CIDR },
	{ "node-prefix-length", required_argument, NULL, OPT_NODE_PREFIX_LENGTH },
	{ "node-prefix-length-v6", required_argument, NULL, OPT_NODE_PREFIX_LENGTH_V6 },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

struct mig_opts {
	const char *from, *to, *state_dir;
	struct etcd_config etcd;
	char prefix[256];
	struct cm_config cfg;
	bool cidr_given, dry_run, help;
};

/* A key and the value migrate puts there. */
struct mig_kv {
	char *key;
	char *value;
	bool create_only; /* compared createRevision == 0 (seen/ is not) */
};

struct mig {
	struct mig_opts o;
	struct cm_mig_node *nodes;
	size_t n_nodes, n_subnets[CM_NFAM];
	int64_t sqlite_revision; /* meta's revision: what the nodes may hold */
	/* Every node's keys, node i's from kv_first[i] on: nodes/, subnets/.., seen/. */
	struct mig_kv *kvs;
	size_t n_kvs, *kv_first;
	struct mig_kv config;
	struct mig_kv offset; /* P/revision-offset: the SQLite revision */
	bool config_exists;
	struct etcd *etcd;
};

static void mig_usage(FILE *f)
{
	fprintf(f,
		"Usage: wgcni-cluster-manager migrate --from sqlite [--state-dir DIR] --to etcd\n"
		"           --etcd-endpoints URLS [--etcd-prefix P] [--etcd-ca-file FILE]\n"
		"           [--etcd-cert-file FILE --etcd-key-file FILE] [--cluster-cidr CIDR]\n"
		"           [--node-prefix-length N] [--node-prefix-length-v6 N] [--dry-run]\n"
		"\n"
		"Copies a SQLite cluster manager's state (every node's subnets, public key and\n"
		"endpoints) into etcd, for --datastore etcd: nodes keep their subnets.\n"
		"The SQLite cluster manager must be stopped (migrate takes its state directory's\n"
		"lock); nothing is overwritten: etcd must hold no nodes under the prefix yet.\n"
		"\n"
		"  --from sqlite                 the store to read (only sqlite)\n"
		"  --state-dir DIR               its state directory, holding cluster.db\n"
		"                                (default /var/lib/wgcni/cluster)\n"
		"  --to etcd                     the store to write (only etcd)\n"
		"  --etcd-endpoints URLS         etcd client URLs, comma-separated\n"
		"  --etcd-prefix P               key prefix (default " CM_ETCD_PREFIX_DEFAULT ")\n"
		"  --etcd-ca-file FILE           CA to trust for etcd's certificate\n"
		"  --etcd-cert-file FILE --etcd-key-file FILE  client certificate for etcd\n"
		"  --cluster-cidr CIDR           the cluster CIDR(s) the SQLite manager ran with,\n"
		"  --node-prefix-length N        the same flags, the same defaults (10.100.0.0/16,\n"
		"  --node-prefix-length-v6 N     24, 64): written to etcd as the cluster's\n"
		"                                configuration; every stored subnet must fit them\n"
		"  --dry-run                     read and check everything, write nothing\n"
		"  -h, --help                    this text\n"
		"\n"
		"Not copied: tombstones and revisions (nodes resync once), external peers\n"
		"(not supported on etcd in this version: migrate refuses a state holding some).\n"
		"Exit status: 0 done, 1 failed (nothing left written), 2 usage error.\n");
}

/* --- the pure parts (migrate.h) --------------------------------------------- */

char *cm_migrate_node_json(const struct cm_mig_node *n)
{
	json_t *o, *subnets;
	char *s;

	subnets = json_array();
	if (!subnets)
		goto err;
	for (size_t i = 0; i < n->n_subnets; i++)
		if (json_array_append_new(subnets, json_string(n->subnets[i]))) {
			json_decref(subnets);
			goto err;
		}
	o = json_pack("{s:o, s:s, s:s, s:s, s:b, s:s}", "subnets", subnets,
		      "publicKey", n->public_key ? n->public_key : "",
		      "endpoint", n->endpoint ? n->endpoint : "",
		      "location", n->location ? n->location : "",
		      "gateway", n->gateway,
		      "publicEndpoint", n->public_endpoint ? n->public_endpoint : "");
	if (!o)
		goto err;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		goto err;
	return s;
err:
	errno = ENOMEM;
	return NULL;
}

int cm_migrate_check_subnet(const struct cm_config *cfg, const char *cidr, int family,
			    char *err, size_t errlen)
{
	struct ipnet net;
	enum cm_family f;
	char buf[IPNET_STRLEN];

	if (family != 4 && family != 6) {
		snprintf(err, errlen, "subnet `%s': unknown family %d", cidr, family);
		return -EINVAL;
	}
	f = family == 4 ? CM_V4 : CM_V6;
	if (ipnet_parse(cidr, &net, true) || (net.addr.family == AF_INET) != (f == CM_V4)) {
		snprintf(err, errlen, "subnet `%s': not an IPv%d CIDR", cidr, family);
		return -EINVAL;
	}
	/* The canonical form: the key P/subnets/<cidr> is what claims compare. */
	if (strcmp(ipnet_format(&net, buf), cidr)) {
		snprintf(err, errlen, "subnet `%s': not in canonical form (`%s')", cidr, buf);
		return -EINVAL;
	}
	if (!cfg->has_cidr[f]) {
		snprintf(err, errlen, "subnet `%s': no IPv%d --cluster-cidr given", cidr, family);
		return -EINVAL;
	}
	if (!ipnet_contains_net(&cfg->cidr[f], &net)) {
		snprintf(err, errlen, "subnet `%s' is outside --cluster-cidr `%s'", cidr,
			 ipnet_format(&cfg->cidr[f], buf));
		return -EINVAL;
	}
	if (net.prefixlen != cfg->childlen[f]) {
		snprintf(err, errlen, "subnet `%s' is not a /%u (%s %u): give the prefix "
			 "length the cluster was using", cidr, cfg->childlen[f],
			 f == CM_V4 ? "--node-prefix-length" : "--node-prefix-length-v6",
			 cfg->childlen[f]);
		return -EINVAL;
	}
	return 0;
}

size_t cm_migrate_batch(const struct cm_mig_node *nodes, size_t n, size_t start,
			size_t extra)
{
	size_t ops = extra, cmps = extra, i;

	for (i = start; i < n; i++) {
		/* nodes/<name> and seen/<name> put, subnets/ put; compares on
		 * nodes/ and each subnets/. */
		size_t o = 2 + nodes[i].n_subnets, c = 1 + nodes[i].n_subnets;

		if (i > start && (ops + o > CM_MIGRATE_TXN_OPS || cmps + c > CM_MIGRATE_TXN_OPS))
			break;
		ops += o;
		cmps += c;
	}
	return i - start;
}

/* --- options ---------------------------------------------------------------- */

static int mig_apply(int val, const char *arg, void *ctx, char *err, size_t errlen)
{
	struct mig_opts *o = ctx;

	switch (val) {
	case OPT_FROM:
		if (strcmp(arg, "sqlite")) {
			snprintf(err, errlen, "--from: unsupported store `%s' (only sqlite)", arg);
			return -EINVAL;
		}
		o->from = arg;
		return 0;
	case OPT_TO:
		if (strcmp(arg, "etcd")) {
			snprintf(err, errlen, "--to: unsupported store `%s' (only etcd)", arg);
			return -EINVAL;
		}
		o->to = arg;
		return 0;
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_ETCD_ENDPOINTS:
		o->etcd.endpoints = arg;
		return 0;
	case OPT_ETCD_PREFIX:
		return cm_config_etcd_prefix(arg, o->prefix, sizeof(o->prefix), err, errlen);
	case OPT_ETCD_CA:
		o->etcd.ca_file = arg;
		return 0;
	case OPT_ETCD_CERT:
		o->etcd.cert_file = arg;
		return 0;
	case OPT_ETCD_KEY:
		o->etcd.key_file = arg;
		return 0;
	case OPT_CLUSTER_CIDR:
		return cm_config_cidrs(&o->cfg, &o->cidr_given, arg, err, errlen);
	case OPT_NODE_PREFIX_LENGTH:
		return cm_config_prefix_length(&o->cfg, CM_V4, arg, err, errlen);
	case OPT_NODE_PREFIX_LENGTH_V6:
		return cm_config_prefix_length(&o->cfg, CM_V6, arg, err, errlen);
	case OPT_DRY_RUN:
		o->dry_run = true;
		return 0;
	case OPT_HELP:
		o->help = true;
		return 0;
	}
	snprintf(err, errlen, "unknown option");
	return -EINVAL;
}

static int mig_validate(const struct mig_opts *o, char *err, size_t errlen)
{
	if (!o->from) {
		snprintf(err, errlen, "--from sqlite is required");
		return -EINVAL;
	}
	if (!o->to) {
		snprintf(err, errlen, "--to etcd is required");
		return -EINVAL;
	}
	if (!o->etcd.endpoints || !*o->etcd.endpoints) {
		snprintf(err, errlen, "--etcd-endpoints is required");
		return -EINVAL;
	}
	if (!o->etcd.cert_file != !o->etcd.key_file) {
		snprintf(err, errlen, "--etcd-cert-file and --etcd-key-file go together");
		return -EINVAL;
	}
	/* The daemon's rule. */
	return cm_config_check(&o->cfg, err, errlen);
}

/* --- reading cluster.db ----------------------------------------------------- */

static void mig_free_nodes(struct mig *m)
{
	for (size_t i = 0; i < m->n_nodes; i++) {
		struct cm_mig_node *n = &m->nodes[i];

		free(n->name);
		free(n->public_key);
		free(n->endpoint);
		free(n->location);
		free(n->public_endpoint);
		for (size_t j = 0; j < n->n_subnets; j++)
			free(n->subnets[j]);
	}
	free(m->nodes);
	m->nodes = NULL;
	m->n_nodes = 0;
}

static char *mig_col(sqlite3_stmt *stmt, int i)
{
	const unsigned char *t = sqlite3_column_text(stmt, i);

	return strdup(t ? (const char *)t : "");
}

static int mig_by_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct cm_mig_node *)elem)->name);
}

/* One value of "SELECT <int>": 0 and *out, or negative errno. */
static int mig_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_errno(rc);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : db_errno(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
}

static int mig_read_nodes(struct mig *m, sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	size_t cap = 0;
	int64_t count;
	int rc, ret;

	ret = mig_int(db, "SELECT COUNT(*) FROM nodes", &count);
	if (ret)
		goto err_sql;
	cap = (size_t)count;
	m->nodes = calloc(cap ? cap : 1, sizeof(*m->nodes));
	if (!m->nodes) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* BINARY collation: byte order, as strcmp (mig_by_name). */
	rc = sqlite3_prepare_v2(db, "SELECT name, public_key, endpoint, last_seen, location, "
				"gateway, public_endpoint FROM nodes ORDER BY name", -1, &stmt,
				NULL);
	if (rc != SQLITE_OK) {
		ret = db_errno(rc);
		goto err_sql;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && m->n_nodes < cap) {
		struct cm_mig_node *n = &m->nodes[m->n_nodes++];
		const char *why;

		n->name = mig_col(stmt, 0);
		n->public_key = mig_col(stmt, 1);
		n->endpoint = mig_col(stmt, 2);
		n->last_seen = sqlite3_column_int64(stmt, 3);
		n->location = mig_col(stmt, 4);
		n->gateway = sqlite3_column_int64(stmt, 5) != 0;
		n->public_endpoint = mig_col(stmt, 6);
		if (!n->name || !n->public_key || !n->endpoint || !n->location ||
		    !n->public_endpoint) {
			sqlite3_finalize(stmt);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		why = name_node_check(n->name);
		if (why) {
			sqlite3_finalize(stmt);
			snprintf(err, errlen, "stored node name `%s' is invalid: %s", n->name, why);
			return -EINVAL;
		}
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		ret = db_errno(rc);
		goto err_sql;
	}
	return 0;
err_sql:
	snprintf(err, errlen, "cannot read the nodes: %s", sqlite3_errmsg(db));
	return ret;
}

static int mig_read_subnets(struct mig *m, sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(db, "SELECT cidr, family, node FROM subnets ORDER BY node, family",
				-1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot read the subnets: %s", sqlite3_errmsg(db));
		return db_errno(rc);
	}
	while (!ret && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *cidr = (const char *)sqlite3_column_text(stmt, 0);
		int family = sqlite3_column_int(stmt, 1);
		const char *name = (const char *)sqlite3_column_text(stmt, 2);
		struct cm_mig_node *n;

		n = name ? bsearch(name, m->nodes, m->n_nodes, sizeof(*m->nodes), mig_by_name) :
			   NULL;
		if (!cidr || !n) {
			snprintf(err, errlen, "subnet `%s' belongs to no stored node (`%s')",
				 cidr ? cidr : "", name ? name : "");
			ret = -EINVAL;
			break;
		}
		ret = cm_migrate_check_subnet(&m->o.cfg, cidr, family, err, errlen);
		if (ret)
			break;
		/* UNIQUE (node, family): at most one of each. */
		if (n->n_subnets == CM_NFAM ||
		    (n->n_subnets && n->subnet_family[n->n_subnets - 1] == family)) {
			snprintf(err, errlen, "node `%s' holds two IPv%d subnets", n->name, family);
			ret = -EINVAL;
			break;
		}
		n->subnets[n->n_subnets] = strdup(cidr);
		if (!n->subnets[n->n_subnets]) {
			snprintf(err, errlen, "out of memory");
			ret = -ENOMEM;
			break;
		}
		n->subnet_family[n->n_subnets++] = family;
		m->n_subnets[family == 4 ? CM_V4 : CM_V6]++;
	}
	sqlite3_finalize(stmt);
	if (!ret && rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read the subnets: %s", sqlite3_errmsg(db));
		ret = db_errno(rc);
	}
	return ret;
}

static int mig_read_db(struct mig *m, char *err, size_t errlen)
{
	char path[4096];
	sqlite3 *db = NULL;
	int64_t version, external;
	int rc, ret;

	snprintf(path, sizeof(path), "%s/cluster.db", m->o.state_dir);
	if (access(path, R_OK)) {
		ret = -errno;
		snprintf(err, errlen, "cannot read `%s': %s", path, strerror(errno));
		return ret;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		ret = db_errno(rc);
		snprintf(err, errlen, "cannot open `%s': %s", path,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	ret = mig_int(db, "PRAGMA user_version", &version);
	if (ret) {
		snprintf(err, errlen, "cannot read `%s': %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (version != CM_MIGRATE_SCHEMA) {
		ret = -EPROTO;
		snprintf(err, errlen, "`%s' has schema version %" PRId64 ", migrate reads %d%s",
			 path, version, CM_MIGRATE_SCHEMA, version < CM_MIGRATE_SCHEMA ?
			 ": start this version's cluster manager on it once to upgrade it" : "");
		goto out;
	}
	/* One read transaction: nodes and subnets as of one moment. */
	ret = db_errno(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL));
	if (ret) {
		snprintf(err, errlen, "cannot read `%s': %s", path, sqlite3_errmsg(db));
		goto out;
	}
	ret = mig_int(db, "SELECT COUNT(*) FROM external_peers", &external);
	if (ret) {
		snprintf(err, errlen, "cannot read the external peers: %s", sqlite3_errmsg(db));
		goto out;
	}
	if (external) {
		ret = -ENOTSUP;
		snprintf(err, errlen, "`%s' holds %" PRId64 " external peer(s): external peers are "
			 "not supported on etcd in this version (delete them with `wgcnictl "
			 "external delete', or stay on sqlite)", path, external);
		goto out;
	}
	ret = mig_int(db, "SELECT value FROM meta WHERE key = 'revision'", &m->sqlite_revision);
	if (ret) {
		snprintf(err, errlen, "cannot read the revision: %s", sqlite3_errmsg(db));
		goto out;
	}
	ret = mig_read_nodes(m, db, err, errlen);
	if (!ret)
		ret = mig_read_subnets(m, db, err, errlen);
out:
	sqlite3_close(db);
	return ret;
}

/* --- the keys ------------------------------------------------------------- */

static char *mig_key(const struct mig *m, const char *dir, const char *name)
{
	char *k;

	if (asprintf(&k, "%s%s%s", m->o.prefix, dir, name) < 0)
		return NULL;
	return k;
}

static int mig_build(struct mig *m, char *err, size_t errlen)
{
	size_t total = 0;

	for (size_t i = 0; i < m->n_nodes; i++)
		total += 2 + m->nodes[i].n_subnets;
	m->kvs = calloc(total ? total : 1, sizeof(*m->kvs));
	m->kv_first = calloc(m->n_nodes + 1, sizeof(*m->kv_first));
	m->config.key = mig_key(m, CM_ETCD_CONFIG, "");
	m->config.value = cm_config_etcd_json(&m->o.cfg);
	m->config.create_only = true;
	m->offset.key = mig_key(m, CM_ETCD_REVISION_OFFSET, "");
	if (asprintf(&m->offset.value, "%" PRId64, m->sqlite_revision) < 0)
		m->offset.value = NULL;
	m->offset.create_only = true;
	if (!m->kvs || !m->kv_first || !m->config.key || !m->config.value || !m->offset.key ||
	    !m->offset.value)
		goto err;
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct cm_mig_node *n = &m->nodes[i];
		struct mig_kv *kv;

		m->kv_first[i] = m->n_kvs;
		kv = &m->kvs[m->n_kvs++];
		kv->key = mig_key(m, CM_ETCD_NODES, n->name);
		kv->value = cm_migrate_node_json(n);
		kv->create_only = true;
		if (!kv->key || !kv->value)
			goto err;
		for (size_t j = 0; j < n->n_subnets; j++) {
			kv = &m->kvs[m->n_kvs++];
			kv->key = mig_key(m, CM_ETCD_SUBNETS, n->subnets[j]);
			kv->value = strdup(n->name);
			kv->create_only = true;
			if (!kv->key || !kv->value)
				goto err;
		}
		kv = &m->kvs[m->n_kvs++];
		kv->key = mig_key(m, CM_ETCD_SEEN, n->name);
		if (!kv->key || asprintf(&kv->value, "%" PRId64, n->last_seen) < 0) {
			kv->value = NULL;
			goto err;
		}
	}
	m->kv_first[m->n_nodes] = m->n_kvs;
	return 0;
err:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

static void mig_free(struct mig *m)
{
	for (size_t i = 0; i < m->n_kvs; i++) {
		free(m->kvs[i].key);
		free(m->kvs[i].value);
	}
	free(m->kvs);
	free(m->kv_first);
	free(m->config.key);
	free(m->config.value);
	free(m->offset.key);
	free(m->offset.value);
	mig_free_nodes(m);
	etcd_free(m->etcd);
}

/* --- etcd --------------------------------------------------------------------- */

static const char *mig_strerror(int ret)
{
	switch (ret) {
	case -EAGAIN:
		return "etcd unavailable (no leader?)";
	case -EKEYREJECTED:
		return "etcd's TLS certificate is not trusted (--etcd-ca-file)";
	case -EACCES:
		return "etcd refused the credentials";
	case -ENOSPC:
		return "etcd's database is full";
	case -EPROTO:
		return "an answer from etcd that cannot be decoded";
	case -EINVAL:
		return "etcd refused the request as invalid (is its --max-txn-ops below 128?)";
	}
	return strerror(-ret);
}

/* How many keys under P<dir>; 0 and *count, or negative errno. */
static int mig_count(struct mig *m, const char *dir, int64_t *count)
{
	struct etcd_range_req req = { .count_only = true };
	struct etcd_kvs out;
	char *key = mig_key(m, dir, ""), *end;
	int ret = -ENOMEM;

	if (!key)
		return ret;
	end = etcd_prefix_end(key);
	if (end) {
		req.key = key;
		req.range_end = end;
		ret = etcd_range(m->etcd, &req, &out, NULL);
		*count = out.count;
		etcd_kvs_free(&out);
	}
	free(end);
	free(key);
	return ret;
}

/* etcd holds nothing of a cluster under the prefix but maybe P/config
 * with our values. */
static int mig_check_etcd(struct mig *m, char *err, size_t errlen)
{
	static const char *const dirs[] = { CM_ETCD_NODES, CM_ETCD_SUBNETS };
	struct etcd_kv kv;
	int64_t count;
	int ret;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		ret = mig_count(m, dirs[i], &count);
		if (ret) {
			snprintf(err, errlen, "cannot read etcd at `%s': %s", m->o.etcd.endpoints,
				 mig_strerror(ret));
			return ret;
		}
		if (count) {
			snprintf(err, errlen, "etcd already holds %" PRId64 " key(s) under `%s%s': "
				 "migrate writes only into an empty prefix (another cluster is "
				 "there, or it was migrated already)", count, m->o.prefix, dirs[i]);
			return -EEXIST;
		}
	}
	ret = etcd_get(m->etcd, m->config.key, &kv, NULL);
	if (ret == -ENOENT)
		return 0;
	if (ret) {
		snprintf(err, errlen, "cannot read `%s' from etcd: %s", m->config.key,
			 mig_strerror(ret));
		return ret;
	}
	/* A cluster manager started on the empty prefix first: fine if it
	 * runs with the same configuration (it has no node yet). */
	if (kv.value_len != strlen(m->config.value) ||
	    memcmp(kv.value, m->config.value, kv.value_len)) {
		snprintf(err, errlen, "`%s' in etcd is %s, the flags give %s: give migrate the "
			 "cluster's --cluster-cidr and --node-prefix-length flags",
			 m->config.key, (const char *)kv.value, m->config.value);
		etcd_kv_free(&kv);
		return -EEXIST;
	}
	etcd_kv_free(&kv);
	m->config_exists = true;
	return 0;
}

/* Nodes [start, start + count) in one transaction (with P/config when
 * first). 0 done; -EEXIST when a compare failed (nothing written);
 * another negative errno from etcd (*maybe: it may have been applied). */
static int mig_txn(struct mig *m, size_t start, size_t count, bool first, int64_t *revision,
		   bool *maybe)
{
	struct etcd_cmp cmp[CM_MIGRATE_TXN_OPS];
	struct etcd_op op[CM_MIGRATE_TXN_OPS];
	struct etcd_txn txn = { .compare = cmp, .success = op };
	struct etcd_txn_result res;
	size_t from = m->kv_first[start], to = m->kv_first[start + count];
	int ret;

	if (first) {
		cmp[txn.n_compare++] = m->config_exists ?
			(struct etcd_cmp){ .target = ETCD_CMP_VALUE, .key = m->config.key,
					   .value = m->config.value,
					   .value_len = strlen(m->config.value) } :
			(struct etcd_cmp){ .target = ETCD_CMP_CREATE, .key = m->config.key };
		if (!m->config_exists)
			op[txn.n_success++] = (struct etcd_op){
				.type = ETCD_OP_PUT, .key = m->config.key,
				.value = m->config.value, .value_len = strlen(m->config.value) };
		/* Served revisions go on from the SQLite one (the store adds it). */
		cmp[txn.n_compare++] = (struct etcd_cmp){ .target = ETCD_CMP_CREATE,
							  .key = m->offset.key };
		op[txn.n_success++] = (struct etcd_op){
			.type = ETCD_OP_PUT, .key = m->offset.key,
			.value = m->offset.value, .value_len = strlen(m->offset.value) };
	}
	for (size_t i = from; i < to; i++) {
		const struct mig_kv *kv = &m->kvs[i];

		if (kv->create_only)
			cmp[txn.n_compare++] = (struct etcd_cmp){ .target = ETCD_CMP_CREATE,
								  .key = kv->key };
		op[txn.n_success++] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = kv->key,
							.value = kv->value,
							.value_len = strlen(kv->value) };
	}
	ret = etcd_txn(m->etcd, &txn, &res);
	*maybe = ret == -ETIMEDOUT || ret == -ECONNRESET;
	if (!ret && !res.succeeded)
		ret = -EEXIST;
	*revision = res.revision;
	etcd_txn_result_free(&res);
	return ret;
}

/* Deletes what migrate put in kvs[from, to) (and P/config when it wrote
 * it), each key only while it holds migrate's value. The number of keys
 * that could not be checked (etcd failing); keys changed since are kept. */
static size_t mig_undo(struct mig *m, size_t from, size_t to, bool config, bool first)
{
	size_t left = 0;

	for (size_t i = from; i < to + 2; i++) {
		const struct mig_kv *kv = i < to ? &m->kvs[i] : i == to ? &m->config : &m->offset;

		if ((kv == &m->config && !config) || (kv == &m->offset && !first))
			continue;
		const struct etcd_cmp cmp = { .target = ETCD_CMP_VALUE, .key = kv->key,
					      .value = kv->value, .value_len = strlen(kv->value) };
		const struct etcd_op op = { .type = ETCD_OP_DELETE, .key = kv->key };
		const struct etcd_txn txn = { .compare = &cmp, .n_compare = 1, .success = &op,
					      .n_success = 1 };
		struct etcd_txn_result res;

		if (etcd_txn(m->etcd, &txn, &res))
			left++;
		etcd_txn_result_free(&res);
	}
	return left;
}

static int mig_write(struct mig *m, size_t *n_txns, int64_t *revision, char *err,
		     size_t errlen)
{
	size_t start = 0, count, left;
	bool maybe = false, config_written = false;
	int ret = 0;

	*n_txns = 0;
	/* With no node, one transaction: P/config alone. */
	do {
		bool first = start == 0;

		count = m->n_nodes ? cm_migrate_batch(m->nodes, m->n_nodes, start,
						       first ? 2 : 0) : 0;
		ret = mig_txn(m, start, count, first, revision, &maybe);
		if (ret)
			break;
		config_written = config_written || (first && !m->config_exists);
		(*n_txns)++;
		start += count;
	} while (start < m->n_nodes);
	if (!ret)
		return 0;

	if (ret == -EEXIST)
		snprintf(err, errlen, "etcd changed under migrate (a key it creates appeared: is a "
			 "cluster manager running on `%s'?)", m->o.prefix);
	else
		snprintf(err, errlen, "writing to etcd at `%s' failed: %s", m->o.etcd.endpoints,
			 mig_strerror(ret));
	if (!start && !config_written && !maybe)
		return ret;
	/* The failed transaction too when its fate is unknown. */
	left = mig_undo(m, 0, m->kv_first[maybe ? start + count : start],
			config_written || (maybe && !m->config_exists), start || maybe);
	if (left) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, "; %zu key(s) written could not be removed again: "
			 "remove them (etcdctl del --prefix %s/) before running migrate again",
			 left, m->o.prefix);
	} else {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, "; what was written is removed again");
	}
	return ret;
}

/* --- main ------------------------------------------------------------------- */

static int mig_lock(const char *dir, int *fd, char *err, size_t errlen)
{
	char path[4096];
	int ret;

	if (snprintf(path, sizeof(path), "%s/cluster.lock", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "state directory path too long: `%s'", dir);
		return -ENAMETOOLONG;
	}
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open `%s': %s", path, strerror(errno));
		return ret;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB)) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (ret == -EBUSY)
			snprintf(err, errlen, "state directory `%s' is in use by a running cluster "
				 "manager (lock `%s' held): stop it first", dir, path);
		else
			snprintf(err, errlen, "cannot lock `%s': %s", path, strerror(errno));
		close(*fd);
		*fd = -1;
		return ret;
	}
	return 0;
}

static void mig_report(const struct mig *m, size_t n_txns, int64_t revision)
{
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct cm_mig_node *n = &m->nodes[i];

		printf("node %s", n->name);
		for (size_t j = 0; j < n->n_subnets; j++)
			printf(" %s", n->subnets[j]);
		printf("%s\n", *n->public_key ? "" : " (no public key yet)");
	}
	if (m->o.dry_run) {
		printf("dry run: would migrate %zu node(s), %zu IPv4 and %zu IPv6 subnet(s) from "
		       "%s/cluster.db to etcd under %s; nothing written\n", m->n_nodes,
		       m->n_subnets[CM_V4], m->n_subnets[CM_V6], m->o.state_dir, m->o.prefix);
		return;
	}
	printf("migrated %zu node(s), %zu IPv4 and %zu IPv6 subnet(s) from %s/cluster.db to "
	       "etcd under %s in %zu transaction(s), etcd revision %" PRId64 "\n", m->n_nodes,
	       m->n_subnets[CM_V4], m->n_subnets[CM_V6], m->o.state_dir, m->o.prefix, n_txns,
	       revision);
	printf("%s %s\n", m->config.key, m->config.value);
	/* The nodes hold SQLite revisions: the managers serve etcd's plus
	 * this, and a node from before gets a full set once. */
	printf("%s %s\n", m->offset.key, m->offset.value);
	printf("next: start the cluster managers with --datastore etcd --etcd-prefix %s and "
	       "the same --cluster-cidr flags, at the addresses the nodes know; keep the "
	       "SQLite manager stopped\n", m->o.prefix);
}

int cm_migrate_main(int argc, char **argv)
{
	struct mig m = {
		.o = {
			.state_dir = "/var/lib/wgcni/cluster",
			.cfg = { .childlen = { 24, 64 } },
		},
	};
	char err[8192];
	size_t n_txns = 0;
	int64_t revision = 0;
	int idx, ret, lock_fd = -1;

	snprintf(m.o.prefix, sizeof(m.o.prefix), "%s", CM_ETCD_PREFIX_DEFAULT);
	m.o.cfg.has_cidr[CM_V4] = !ipnet_parse("10.100.0.0/16", &m.o.cfg.cidr[CM_V4], true);
	idx = opts_parse(argc, argv, "h", mig_options, mig_apply, &m.o, err, sizeof(err));
	if (idx < 0) {
		fprintf(stderr, PROG ": %s (see --help)\n", err);
		return 2;
	}
	if (m.o.help) {
		mig_usage(stdout);
		return 0;
	}
	if (idx < argc) {
		fprintf(stderr, PROG ": unexpected argument `%s' (see --help)\n", argv[idx]);
		return 2;
	}
	if (mig_validate(&m.o, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s (see --help)\n", err);
		return 2;
	}
	/* The etcd client's own logs: only what it cannot say in an errno. */
	log_init("wgcni-cluster-manager", LOG_LEVEL_ERROR);

	ret = mig_lock(m.o.state_dir, &lock_fd, err, sizeof(err));
	if (ret)
		goto out;
	ret = mig_read_db(&m, err, sizeof(err));
	if (ret)
		goto out;
	ret = mig_build(&m, err, sizeof(err));
	if (ret)
		goto out;
	m.etcd = etcd_new(&m.o.etcd);
	if (!m.etcd) {
		ret = -errno;
		snprintf(err, sizeof(err), "invalid etcd settings (--etcd-endpoints `%s', TLS "
			 "files): %s", m.o.etcd.endpoints, strerror(errno));
		goto out;
	}
	ret = mig_check_etcd(&m, err, sizeof(err));
	if (ret)
		goto out;
	if (!m.o.dry_run)
		ret = mig_write(&m, &n_txns, &revision, err, sizeof(err));
	if (!ret)
		mig_report(&m, n_txns, revision);
out:
	if (ret)
		fprintf(stderr, PROG ": %s\n", err);
	mig_free(&m);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret ? 1 : 0;
}
