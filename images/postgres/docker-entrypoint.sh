#!/usr/bin/env bash
# What the official postgres image's entrypoint does, for the variables kiln's
# PostgresInstance chart sets (PGDATA, POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_INITDB_ARGS) plus POSTGRES_DB and /docker-entrypoint-initdb.d:
# initdb into an empty PGDATA with the superuser password read from a file
# descriptor (never argv), allow password logins from anywhere, then exec the
# server. Runs as postgres (uid 999); started as root it drops to postgres.
set -Eeo pipefail

# Arguments that start with '-' are server options, as in the official image.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA POSTGRES_USER POSTGRES_DB

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

mkdir -p "$PGDATA"
chmod 00700 "$PGDATA" || :

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		echo 'docker-entrypoint.sh: PGDATA is empty and POSTGRES_PASSWORD is not set: refusing to create a superuser without a password' >&2
		exit 1
	fi
	# POSTGRES_INITDB_ARGS is word-split on purpose (it carries several options).
	# shellcheck disable=SC2086
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS

	# Remote logins with the server's password_encryption (scram-sha-256 by default).
	auth=${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption "${@:2}")}
	printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	# A temporary server reachable only through the socket, for POSTGRES_DB and init scripts.
	shopt -s nullglob
	scripts=(/docker-entrypoint-initdb.d/*)
	if [ "$POSTGRES_DB" != 'postgres' ] || [ ${#scripts[@]} -gt 0 ]; then
		pg_ctl -D "$PGDATA" -w start -o "$(printf '%q ' "${@:2}" -c listen_addresses='' -p "${PGPORT:-5432}")"
		psql=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
		if [ "$POSTGRES_DB" != 'postgres' ]; then
			"${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
		fi
		for f in "${scripts[@]}"; do
			case "$f" in
				*.sh) echo "running $f"; . "$f" ;;
				*.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
				*.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
				*) echo "ignoring $f" ;;
			esac
		done
		pg_ctl -D "$PGDATA" -m fast -w stop
	fi
	echo 'docker-entrypoint.sh: PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
