#!/usr/bin/env bash
# Stops what start-wordpress.sh started for the same WP_BASE.
#
#   WP_BASE=/tmp/aic-wordpress scripts/wordpress/stop-wordpress.sh [--web] [--purge]
#
#   --web    stop only the PHP web server, keeping MariaDB: a WordPress outage, undone by running
#            start-wordpress.sh again
#   --purge  also delete $WP_BASE (site copy, database, credentials)
set -uo pipefail
WP_BASE="${WP_BASE:-/tmp/aic-wordpress}"
web_only=0 purge=0
for arg; do
  case $arg in
    --web) web_only=1 ;;
    --purge) purge=1 ;;
    *) echo "usage: stop-wordpress.sh [--web] [--purge]" >&2; exit 64 ;;
  esac
done

# kill -0 also succeeds on zombies, and PID 1 in some containers never reaps them.
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat"; }

# Each server leads its own process group (setsid), so php -S's workers go with it.
stop() {  # name pidfile seconds-before-SIGKILL
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 0
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $(($3 * 10))); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
    echo "[stop-wordpress] stopped $1 (pid $pid)" >&2
  fi
  rm -f "$2"
}

stop "php -S" "$WP_BASE/php.pid" 5
((web_only)) && exit 0
stop mariadbd "$WP_BASE/mysqld.pid" 30    # SIGTERM is mariadbd's clean shutdown
# Only ever delete a directory start-wordpress.sh made.
if ((purge)) && [ -f "$WP_BASE/salts.php" ]; then
  rm -rf "$WP_BASE"
  echo "[stop-wordpress] purged $WP_BASE" >&2
fi
exit 0
