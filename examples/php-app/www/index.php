<?php
// The front controller: every path without a file of its own lands here.
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<title>fastgate PHP example</title>
<h1>Routed: <?= htmlspecialchars($path) ?></h1>
<p>Visits in this session: <?= (int) $_SESSION['visits'] ?></p>
<p>Served by php-cgi pid <?= getmypid() ?>, behind <?= htmlspecialchars($_SERVER['SERVER_SOFTWARE']) ?>.</p>
<p>Try <a href="/blog/2026/hello">/blog/2026/hello</a> or <a href="/info.php">/info.php</a>.</p>
