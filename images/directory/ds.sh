#!/usr/bin/env bash
# The directory image's commands, as kiln's DirectoryService, DirectoryBackup
# and DirectoryRestore charts call them, served by OpenLDAP (slapd):
#
#   start-ds  serve LDAP on 1389, LDAPS on 1636 and LDAP on 4444 (the liveness
#             probe's port) from the data in $DS_DATA_DIR
#   init      import the *.ldif files of $DS_INIT_LDIF_DIR, only into an empty backend
#   backup    slapcat $DS_DATA_DIR into a new directory under $DS_BACKUP_DIR
#   restore   slapadd the newest backup under $DS_BACKUP_DIR into an empty $DS_DATA_DIR
#
# The image's own settings (spec.env of a DirectoryService):
#   DS_SUFFIX               naming context, fixed by the first start (default dc=kiln,dc=test)
#   DS_ADMIN_DN             the root DN, which may change any password (default uid=admin,<suffix>)
#   DS_ADMIN_PASSWORD_FILE  file holding its password, e.g. a mounted spec.passwords Secret;
#                           DS_ADMIN_PASSWORD is read when no file is named
#   DS_TLS_CERT_FILE, DS_TLS_KEY_FILE  PEM for LDAPS (default: the sslKeypair Secret's
#                           tls.crt/tls.key; without one a self-signed certificate is made)
#   DS_LOG_LEVEL            slapd's -d level, logged to stderr (default stats)
#
# Data volume layout: db/ (the mdb database) and kiln-ds.conf (the suffix),
# so backup and restore Jobs, which get only DS_DATA_DIR and DS_BACKUP_DIR,
# know what they hold. slapd's cn=config is generated under /tmp on every run.
set -Eeuo pipefail

SCHEMA_DIR=/etc/ldap/schema
MODULE_DIR=/usr/lib/ldap
RUN_DIR=${TMPDIR:-/tmp}/ds
SSL_DIR=/var/run/secrets/keys/ssl

log() { echo "ds: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

data_dir() {
	: "${DS_DATA_DIR:?DS_DATA_DIR is not set}"
	echo "$DS_DATA_DIR"
}

# The suffix of the data in $1: kept in the volume from the first run on.
load_settings() {
	local data=$1 create=${2:-}
	if [[ -f $data/kiln-ds.conf ]]; then
		SUFFIX=$(sed -n 's/^suffix=//p' "$data/kiln-ds.conf")
		if [[ -n ${DS_SUFFIX:-} && ${DS_SUFFIX} != "$SUFFIX" ]]; then
			log "DS_SUFFIX=$DS_SUFFIX ignored: the data volume holds $SUFFIX"
		fi
	elif [[ -n $create ]]; then
		SUFFIX=${DS_SUFFIX:-dc=kiln,dc=test}
		mkdir -p "$data/db"
		echo "suffix=$SUFFIX" >"$data/kiln-ds.conf"
	else
		die "$data holds no directory data (no kiln-ds.conf)"
	fi
	[[ -n $SUFFIX ]] || die "$data/kiln-ds.conf names no suffix"
	ADMIN_DN=${DS_ADMIN_DN:-uid=admin,$SUFFIX}
}

# cn=config for the mdb database in directory $1, written with slapadd into $RUN_DIR/slapd.d.
# $2: olcRootPW line or empty; $3: TLS lines or empty (no blank lines: they would end the entry).
write_config() {
	local db=$1 rootpw=${2:+$2$'\n'} tls=${3:+$3$'\n'}
	rm -rf "$RUN_DIR/slapd.d"
	mkdir -p "$RUN_DIR/slapd.d"
	local schemas="" s
	for s in core cosine inetorgperson nis; do
		schemas+="include: file://$SCHEMA_DIR/$s.ldif"$'\n\n'
	done
	slapadd -n0 -F "$RUN_DIR/slapd.d" <<EOF >/dev/null
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $RUN_DIR/slapd.pid
olcArgsFile: $RUN_DIR/slapd.args
olcLogLevel: none
${tls}
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULE_DIR
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

${schemas}dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcPasswordHash: {SSHA}

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcRootDN: $ADMIN_DN
${rootpw}olcDbDirectory: $db
olcDbMaxSize: ${DS_DB_MAX_SIZE:-1073741824}
olcDbMode: 0660
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by self read by users read by * none
EOF
}

# Number of entries in the mdb database in directory $1 (0 for a new data volume).
entry_count() {
	[[ -s $1/data.mdb ]] || {
		echo 0
		return
	}
	slapcat -F "$RUN_DIR/slapd.d" -n1 -l "$RUN_DIR/count.ldif" || die "slapcat of $1 failed"
	grep -c '^dn:' "$RUN_DIR/count.ldif" || true
	rm -f "$RUN_DIR/count.ldif"
}

# The entry for the suffix itself, when the suffix's RDN says what it is.
suffix_entry() {
	local rdn=${SUFFIX%%,*} attr value
	attr=${rdn%%=*}
	value=${rdn#*=}
	case "${attr,,}" in
		dc) printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n' "$SUFFIX" "$value" "$value" ;;
		o) printf 'dn: %s\nobjectClass: organization\no: %s\n' "$SUFFIX" "$value" ;;
		ou) printf 'dn: %s\nobjectClass: organizationalUnit\nou: %s\n' "$SUFFIX" "$value" ;;
		*) return 1 ;;
	esac
}

tls_config() {
	local cert=${DS_TLS_CERT_FILE:-} key=${DS_TLS_KEY_FILE:-}
	if [[ -z $cert && -f $SSL_DIR/tls.crt && -f $SSL_DIR/tls.key ]]; then
		cert=$SSL_DIR/tls.crt
		key=$SSL_DIR/tls.key
	fi
	if [[ -z $cert ]]; then
		# Nobody can verify this one: clients that verify need the sslKeypair Secret.
		cert=$RUN_DIR/tls/tls.crt
		key=$RUN_DIR/tls/tls.key
		mkdir -p "$RUN_DIR/tls"
		local host=${POD_NAME:-$(hostname)} san="DNS:localhost,IP:127.0.0.1,DNS:$(hostname)"
		if [[ -n ${DS_SERVICE_NAME:-} && -n ${POD_NAMESPACE:-} ]]; then
			san+=",DNS:$host.$DS_SERVICE_NAME.$POD_NAMESPACE.svc,DNS:$host.$DS_SERVICE_NAME.$POD_NAMESPACE.svc.cluster.local,DNS:$DS_SERVICE_NAME.$POD_NAMESPACE.svc"
		fi
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
			-subj "/CN=$host" -addext "subjectAltName=$san" -keyout "$key" -out "$cert" 2>/dev/null
		log "no TLS key pair mounted: LDAPS uses a self-signed certificate for $san"
	fi
	printf 'olcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s' "$cert" "$key"
}

root_password_line() {
	local file=${DS_ADMIN_PASSWORD_FILE:-}
	if [[ -n $file ]]; then
		[[ -r $file ]] || die "DS_ADMIN_PASSWORD_FILE=$file is not readable"
		# -T reads the whole file (a Secret's value has no trailing newline); the password never reaches argv.
		echo "olcRootPW: $(slappasswd -h '{SSHA}' -T "$file")"
	elif [[ -n ${DS_ADMIN_PASSWORD:-} ]]; then
		echo "olcRootPW: $(printf '%s' "$DS_ADMIN_PASSWORD" | slappasswd -h '{SSHA}' -T /dev/stdin)"
	else
		log "neither DS_ADMIN_PASSWORD_FILE nor DS_ADMIN_PASSWORD is set: $ADMIN_DN cannot bind"
	fi
}

cmd_start_ds() {
	local data
	data=$(data_dir)
	load_settings "$data" create
	write_config "$data/db" "$(root_password_line)" "$(tls_config)"
	if [[ $(entry_count "$data/db") == 0 ]] && suffix_entry >/dev/null; then
		suffix_entry | slapadd -q -F "$RUN_DIR/slapd.d" -n1
		log "empty backend: created $SUFFIX"
	fi
	log "serving $SUFFIX (root DN $ADMIN_DN) on ldap 1389, ldaps 1636, ldap 4444"
	# -d keeps slapd in the foreground and sends its log to stderr (no syslog in a container).
	exec slapd -d "${DS_LOG_LEVEL:-stats}" -F "$RUN_DIR/slapd.d" -h "ldap://:1389/ ldaps://:1636/ ldap://:4444/"
}

cmd_init() {
	local data dir=${DS_INIT_LDIF_DIR:?DS_INIT_LDIF_DIR is not set}
	data=$(data_dir)
	load_settings "$data" create
	write_config "$data/db" "" ""
	local n
	n=$(entry_count "$data/db")
	if [[ $n != 0 ]]; then
		log "backend holds $n entries: nothing imported"
		return 0
	fi
	# ConfigMap volumes hold ..data links and dot directories: only visible *.ldif files count.
	local files=()
	mapfile -t files < <(find -L "$dir" -maxdepth 1 -type f -name '*.ldif' ! -name '.*' | sort)
	((${#files[@]})) || die "no *.ldif files in $dir"
	local f
	for f in "${files[@]}"; do
		slapadd -q -F "$RUN_DIR/slapd.d" -n1 -l "$f"
		log "imported $f"
	done
	log "backend holds $(entry_count "$data/db") entries"
}

cmd_backup() {
	local data out=${DS_BACKUP_DIR:?DS_BACKUP_DIR is not set}
	data=$(data_dir)
	load_settings "$data"
	# back-mdb opens only a writable directory, and the Job mounts the data
	# read-only: slapcat then reads a copy (of a snapshot's clone, so consistent).
	local db=$data/db
	if [[ ! -w $db ]]; then
		mkdir -p "$RUN_DIR/db"
		cp --sparse=always "$db/data.mdb" "$RUN_DIR/db/data.mdb"
		db=$RUN_DIR/db
	fi
	write_config "$db" "" ""
	local name target
	name=backup-$(date -u +%Y%m%dT%H%M%SZ)
	target=$out/$name
	mkdir -p "$target.partial"
	cp "$data/kiln-ds.conf" "$target.partial/"
	slapcat -F "$RUN_DIR/slapd.d" -n1 -l "$target.partial/data.ldif"
	mv "$target.partial" "$target"
	local n
	n=$(grep -c '^dn:' "$target/data.ldif" || true)
	echo "wrote $target/data.ldif: $n entries of $SUFFIX ($(stat -c %s "$target/data.ldif") bytes)"
}

cmd_restore() {
	local data in=${DS_BACKUP_DIR:?DS_BACKUP_DIR is not set}
	data=$(data_dir)
	local from=${DS_RESTORE_FROM:-}
	if [[ -z $from ]]; then
		from=$(find "$in" -mindepth 1 -maxdepth 1 -type d -name 'backup-*' ! -name '*.partial' | sort | tail -n1)
		[[ -n $from ]] || die "no backup-* directory in $in"
	fi
	[[ -f $from/data.ldif && -f $from/kiln-ds.conf ]] || die "$from holds no data.ldif and kiln-ds.conf"
	if [[ -f $data/kiln-ds.conf ]]; then
		load_settings "$data"
		write_config "$data/db" "" ""
		[[ $(entry_count "$data/db") == 0 ]] || die "$data already holds directory data: restore only into an empty volume"
	fi
	mkdir -p "$data/db"
	cp "$from/kiln-ds.conf" "$data/kiln-ds.conf"
	load_settings "$data"
	write_config "$data/db" "" ""
	slapadd -q -F "$RUN_DIR/slapd.d" -n1 -l "$from/data.ldif"
	echo "restored $from into $data: $(entry_count "$data/db") entries of $SUFFIX"
}

case "${1:-start-ds}" in
	start-ds) cmd_start_ds ;;
	init) cmd_init ;;
	backup) cmd_backup ;;
	restore) cmd_restore ;;
	*) exec "$@" ;;
esac
