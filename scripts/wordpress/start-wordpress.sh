#!/usr/bin/env bash
# A real WordPress (Debian 12 packages WordPress 6.1) for AI Connector's tests and development.
#
#   WP_BASE=/tmp/aic-wordpress WP_PORT=18089 scripts/wordpress/start-wordpress.sh
#
# Measured on 2 shared busy cores with the packages installed: new site 2.3-4.1 s; restart of a
# stopped site 0.8-1.0 s; web server only (after stop-wordpress.sh --web) 0.7-0.8 s; re-run while
# everything runs 0.3-0.4 s. Installing missing packages first adds apt's time (~22 s measured
# for the reference recipe this script is built on).
#
# Idempotent, needs root. Installs the Debian packages when missing, then runs, all under
# $WP_BASE: a copy of /usr/share/wordpress (wp-load.php resolves its real path, so a symlinked
# tree would load Debian's own wp-config.php), a private MariaDB on a unix socket (no TCP), and
# PHP's built-in server on 127.0.0.1:$WP_PORT with router.php so /wp-json/ works. It installs
# WordPress with pretty permalinks, makes the admin ($WP_ADMIN_USER / $WP_ADMIN_PASSWORD) and an
# Application Password named $WP_APP_NAME for it.
#
# stdout: only sourceable KEY='value' lines (also kept in $WP_BASE/wp.env); logs go to stderr.
# Exit status: 0 ready; 3 this machine cannot run it (not root, no apt-get, packages could not be
# installed), which tests report as a skip; anything else is a failure.
# Stop with scripts/wordpress/stop-wordpress.sh (same WP_BASE).
set -euo pipefail
export LC_ALL=C   # EPOCHREALTIME and awk must agree on the decimal point

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WP_BASE="${WP_BASE:-/tmp/aic-wordpress}"
WP_PORT="${WP_PORT:-18089}"
WP_ADMIN_USER="${WP_ADMIN_USER:-admin}"
WP_ADMIN_PASSWORD="${WP_ADMIN_PASSWORD:-admin-test-password}"   # login password
WP_ADMIN_EMAIL="${WP_ADMIN_EMAIL:-admin@example.com}"
WP_APP_NAME="${WP_APP_NAME:-tests}"
WP_WORKERS="${WP_WORKERS:-4}"   # PHP_CLI_SERVER_WORKERS; without it php -S serves one request at a time
WP_HOST=127.0.0.1
WP_URL="http://$WP_HOST:$WP_PORT"
DB_NAME=wordpress DB_USER=wordpress DB_PASS=wordpress
SITE="$WP_BASE/site" DATA="$WP_BASE/mysql"
# A unix socket path must fit in sun_path (108 bytes); a deep WP_BASE gets a short one in /tmp.
SOCK="$WP_BASE/mysqld.sock"
if ((${#SOCK} > 100)); then
  SOCK="/tmp/aic-wp-$(printf %s "$WP_BASE" | sha1sum | cut -c1-16).sock"
fi
# Same on install and start; a test database needs neither a 96 MB redo log nor an fsync per commit.
DB_OPTS=(--innodb-log-file-size=8M --innodb-flush-log-at-trx-commit=2)

t0=$EPOCHREALTIME
log() { printf '[start-wordpress %s] %s\n' "$(date +%T)" "$*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }
unavailable() { log "cannot run WordPress here: $*"; exit 3; }
fail() { log "$*"; exit 1; }
# kill -0 also succeeds on zombies, and PID 1 in some containers never reaps them.
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat"; }

[ "$(id -u)" = 0 ] || unavailable "needs root (apt-get, and mariadbd runs as root)"
mkdir -p "$WP_BASE"
chmod 700 "$WP_BASE"   # wp.env holds the admin's passwords

# ---------------------------------------------------------------- 1. Debian packages
PKGS=(wordpress wordpress-theme-twentytwentythree php-cli php-mysql php-mbstring php-xml php-curl
      mariadb-server curl)
command -v dpkg-query >/dev/null || unavailable "not a Debian system (no dpkg-query)"
# dpkg-query fails for names it has never seen, which is the normal case on a fresh machine.
installed=" $({ dpkg-query -W -f='${Status} ${Package}\n' "${PKGS[@]}" 2>/dev/null || true; } \
  | awk '$3 == "installed" { printf "%s ", $4 }')"
missing=()
for p in "${PKGS[@]}"; do [[ $installed == *" $p "* ]] || missing+=("$p"); done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || unavailable "packages missing (${missing[*]}) and no apt-get"
  log "installing ${missing[*]}"
  s=$EPOCHREALTIME
  # Maintainer scripts must not start system apache2/mariadb services.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # Package lists are absent or stale on a fresh machine; another apt may hold the lock.
  if ! { apt-get -o DPkg::Lock::Timeout=300 update -q >"$WP_BASE/apt-update.log" 2>&1 &&
         DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
           --no-install-recommends "${missing[@]}" >"$WP_BASE/apt-install.log" 2>&1; }; then
    unavailable "apt-get failed, see $WP_BASE/apt-update.log and apt-install.log"
  fi
  if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  log "packages installed in $(since "$s")"
fi
WP_VERSION=$(php -r 'include "/usr/share/wordpress/wp-includes/version.php"; echo $wp_version;')

# ---------------------------------------------------------------- 2. site files
if [ "$(php -r 'include $argv[1]; echo $wp_version;' "$SITE/wp-includes/version.php" 2>/dev/null)" \
     != "$WP_VERSION" ]; then
  log "copying /usr/share/wordpress ($WP_VERSION) to $SITE"
  rm -rf "$SITE"
  cp -a /usr/share/wordpress "$SITE"
  rm -f "$SITE/wp-config.php" "$SITE/.htaccess"
  mkdir -p "$SITE/wp-content/uploads"
fi
install -D -m 644 "$HERE/test-site-plugin.php" "$SITE/wp-content/mu-plugins/aic-test-site.php"
if [ ! -f "$WP_BASE/salts.php" ]; then
  php -r 'echo "<?php\n"; foreach (["AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
    "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"] as $k)
    printf("define(%s, %s);\n", var_export($k, true), var_export(bin2hex(random_bytes(32)), true));' \
    >"$WP_BASE/salts.php"
fi
# Written on every run (the port may differ), atomically: a running server may be reading it.
cat >"$SITE/wp-config.php.new" <<PHP
<?php
// Written by scripts/wordpress/start-wordpress.sh
define('DB_NAME', '$DB_NAME');
define('DB_USER', '$DB_USER');
define('DB_PASSWORD', '$DB_PASS');
define('DB_HOST', 'localhost:$SOCK');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
\$table_prefix = 'wp_';
require __DIR__ . '/../salts.php';
define('WP_ENVIRONMENT_TYPE', 'local');    // Application Passwords over plain http need 'local'
define('WP_HOME', '$WP_URL');
define('WP_SITEURL', '$WP_URL');
define('DISABLE_WP_CRON', true);           // no loopback cron requests in the middle of tests
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);    // no outbound HTTP: fail fast instead of timing out
define('FS_METHOD', 'direct');
define('WP_DEBUG', false);
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
PHP
mv -f "$SITE/wp-config.php.new" "$SITE/wp-config.php"

# ---------------------------------------------------------------- 3. MariaDB
db_up() { mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; }
if [ ! -d "$DATA/mysql" ]; then
  rm -rf "$DATA"
  mariadb-install-db --no-defaults --datadir="$DATA" --user=root --auth-root-authentication-method=socket \
    --skip-test-db "${DB_OPTS[@]}" >"$WP_BASE/mariadb-install.log" 2>&1 \
    || fail "mariadb-install-db failed, see $WP_BASE/mariadb-install.log"
fi
if ! db_up; then
  s=$EPOCHREALTIME
  rm -f "$SOCK"
  setsid nohup mariadbd --no-defaults --user=root --datadir="$DATA" --socket="$SOCK" \
    --pid-file="$WP_BASE/mysqld.pid" --log-error="$WP_BASE/mysqld.log" --skip-networking \
    --skip-name-resolve --innodb-buffer-pool-size=64M "${DB_OPTS[@]}" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci >/dev/null 2>&1 &
  db_pid=$!
  for _ in $(seq 300); do db_up && break; alive "$db_pid" || break; sleep 0.1; done
  db_up || fail "mariadbd did not start, see $WP_BASE/mysqld.log"
  log "mariadbd up in $(since "$s")"
fi
mariadb --no-defaults --socket="$SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
SQL

# ---------------------------------------------------------------- 4. WordPress install
WP_ADMIN_ID=$(php "$HERE/wp-setup.php" install "$SITE" "$WP_URL" "$WP_ADMIN_USER" "$WP_ADMIN_PASSWORD" \
  "$WP_ADMIN_EMAIL" "AI Connector test site") || fail "WordPress install failed"

# ---------------------------------------------------------------- 5. web server
web_up() { [ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$WP_URL/wp-json/")" = 200 ]; }
port_taken() { (exec 3<>"/dev/tcp/$WP_HOST/$WP_PORT") 2>/dev/null; }
php_pid=$(cat "$WP_BASE/php.pid" 2>/dev/null || true)
if ! { [ -n "$php_pid" ] && alive "$php_pid" && web_up; }; then
  if [ -n "$php_pid" ] && alive "$php_pid"; then kill -KILL -- "-$php_pid" 2>/dev/null || true; fi
  rm -f "$WP_BASE/php.pid"
  for _ in $(seq 30); do port_taken || break; sleep 0.1; done
  port_taken && fail "port $WP_PORT is in use by another program"
  s=$EPOCHREALTIME
  PHP_CLI_SERVER_WORKERS="$WP_WORKERS" setsid nohup php \
    -d upload_max_filesize=32M -d post_max_size=40M -d memory_limit=256M \
    -d display_errors=stderr -d log_errors=On \
    -S "$WP_HOST:$WP_PORT" -t "$SITE" "$HERE/router.php" >>"$WP_BASE/php-server.log" 2>&1 &
  php_pid=$!
  echo "$php_pid" >"$WP_BASE/php.pid"
  for _ in $(seq 200); do web_up && break; alive "$php_pid" || break; sleep 0.1; done
  web_up || fail "php -S did not answer on $WP_URL/wp-json/, see $WP_BASE/php-server.log"
  log "php -S up on $WP_URL in $(since "$s")"
fi

# ---------------------------------------------------------------- 6. admin Application Password
app_password_ok() {
  [ -n "$WP_APP_PASSWORD" ] && [ "$(curl -s -o /dev/null -m 10 -w '%{http_code}' \
    -u "$WP_ADMIN_USER:$WP_APP_PASSWORD" "$WP_URL/wp-json/wp/v2/users/me?context=edit")" = 200 ]
}
WP_APP_PASSWORD=$(sed -n "s/^WP_APP_PASSWORD='\(.*\)'\$/\1/p" "$WP_BASE/wp.env" 2>/dev/null || true)
if ! app_password_ok; then
  WP_APP_PASSWORD=$(php "$HERE/wp-setup.php" apppass "$SITE" "$WP_URL" "$WP_ADMIN_USER" "$WP_APP_NAME") \
    || fail "could not create an Application Password"
  app_password_ok || fail "the new Application Password is refused by the REST API"
fi

cat >"$WP_BASE/wp.env.new" <<ENV
WP_URL='$WP_URL'
WP_API='$WP_URL/wp-json/wp/v2'
WP_VERSION='$WP_VERSION'
WP_ADMIN_ID='$WP_ADMIN_ID'
WP_ADMIN_USER='$WP_ADMIN_USER'
WP_ADMIN_PASSWORD='$WP_ADMIN_PASSWORD'
WP_ADMIN_EMAIL='$WP_ADMIN_EMAIL'
WP_APP_PASSWORD='$WP_APP_PASSWORD'
ENV
mv -f "$WP_BASE/wp.env.new" "$WP_BASE/wp.env"
log "WordPress $WP_VERSION ready on $WP_URL in $(since "$t0")"
cat "$WP_BASE/wp.env"
