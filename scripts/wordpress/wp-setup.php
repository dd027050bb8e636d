<?php
/*
 * Headless WordPress set-up for start-wordpress.sh, run with php-cli: Debian ships no wp-cli,
 * and the REST API cannot bootstrap itself (its first credential has to come from somewhere).
 *
 *   php wp-setup.php install SITE_DIR URL ADMIN_USER ADMIN_PASSWORD ADMIN_EMAIL TITLE
 *       Installs the site unless it is installed, makes the admin's login password ADMIN_PASSWORD
 *       (so a re-run with the same inputs always yields a known state), sets pretty permalinks,
 *       and prints the admin's user id.
 *   php wp-setup.php apppass SITE_DIR URL ADMIN_USER APP_NAME
 *       Replaces the admin's Application Password(s) named APP_NAME with a new one and prints it:
 *       WordPress shows the plaintext only once, at creation.
 */
if (PHP_SAPI !== 'cli') {
    exit(1);
}
$mode = $argv[1] ?? '';
$site = rtrim($argv[2] ?? '', '/');
$url = parse_url($argv[3] ?? '');
// wp-load.php expects to be inside a web request for the site's own host.
$_SERVER['HTTP_HOST'] = $url['host'] . (isset($url['port']) ? ':' . $url['port'] : '');
$_SERVER['SERVER_NAME'] = $url['host'];
$_SERVER['SERVER_PORT'] = $url['port'] ?? 80;
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = '/index.php';

function fail(string $message, int $status): never
{
    fwrite(STDERR, "wp-setup: $message\n");
    exit($status);
}

if ($mode === 'install' && $argc === 8) {
    [, , , , $login, $password, $email, $title] = $argv;
    define('WP_INSTALLING', true);             // otherwise wp-settings.php redirects to install.php
    require $site . '/wp-load.php';
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    // wp_install() probes the site over HTTP to test permalinks; the web server is not up yet.
    add_filter('pre_http_request', function () {
        return new WP_Error('http_disabled', 'no HTTP during set-up');
    });
    if (!is_blog_installed()) {
        $result = wp_install($title, $login, $email, true, '', wp_slash($password), 'en_US');
        if (is_wp_error($result) || empty($result['user_id'])) {
            fail('wp_install failed: ' . print_r($result, true), 2);
        }
        fwrite(STDERR, "wp-setup: installed, admin user id {$result['user_id']}\n");
    }
    $admin = get_user_by('login', $login);
    if (!$admin) {
        fail("no user '$login' in the installed site", 3);
    }
    if (!wp_check_password($password, $admin->user_pass, $admin->ID)) {
        wp_set_password($password, $admin->ID);
    }
    // Pretty permalinks: /wp-json/... instead of ?rest_route=..., like a production site.
    if (get_option('permalink_structure') !== '/%postname%/') {
        update_option('permalink_structure', '/%postname%/');
        delete_option('rewrite_rules');           // rebuilt by the next request
    }
    echo $admin->ID, "\n";
    exit(0);
}

if ($mode === 'apppass' && $argc === 6) {
    [, , , , $login, $name] = $argv;
    require $site . '/wp-load.php';
    $admin = get_user_by('login', $login);
    if (!$admin) {
        fail("no user '$login'", 3);
    }
    foreach (WP_Application_Passwords::get_user_application_passwords($admin->ID) as $item) {
        if ($item['name'] === $name) {
            WP_Application_Passwords::delete_application_password($admin->ID, $item['uuid']);
        }
    }
    $created = WP_Application_Passwords::create_new_application_password($admin->ID, ['name' => $name]);
    if (is_wp_error($created)) {
        fail($created->get_error_message(), 4);
    }
    echo $created[0], "\n";                       // 24 characters [A-Za-z0-9]
    exit(0);
}

fail('usage: php wp-setup.php install SITE URL USER PASSWORD EMAIL TITLE | apppass SITE URL USER NAME', 64);
