<?php
/*
 * Router for PHP's built-in web server, standing in for Apache's rewrite rules so that
 * pretty permalinks, and with them /wp-json/..., reach WordPress' front controller.
 *
 *   php -S 127.0.0.1:PORT -t SITE_DIR scripts/wordpress/router.php
 */
$__wp_root = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$__wp_file = $__wp_root . rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');

// A directory is served by its index.php (/wp-admin/ -> /wp-admin/index.php).
if (is_dir($__wp_file)) {
    $__wp_file = rtrim($__wp_file, '/') . '/index.php';
}
if (is_file($__wp_file)) {
    if (substr($__wp_file, -4) !== '.php') {
        return false;                      // static asset: php -S serves it as is
    }
    // Run the PHP file itself, in the script context WordPress derives its paths from.
    $_SERVER['SCRIPT_FILENAME'] = $__wp_file;
    $_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = substr($__wp_file, strlen($__wp_root));
    chdir(dirname($__wp_file));
    require $__wp_file;
    return true;
}
// Everything else (permalinks, /wp-json/...) is WordPress' to route.
$_SERVER['SCRIPT_FILENAME'] = $__wp_root . '/index.php';
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = '/index.php';
chdir($__wp_root);
unset($__wp_file);
require $__wp_root . '/index.php';
