<?php
/*
 * Must-use plugin of the test WordPress (start-wordpress.sh copies it to wp-content/mu-plugins).
 *
 * Mail is dropped and reported as sent: creating users and changing passwords makes WordPress
 * send notices, and a machine with a working MTA would otherwise try to deliver them to the
 * test users' example.com addresses (or stall on a missing sendmail).
 */
add_filter('pre_wp_mail', '__return_true');
