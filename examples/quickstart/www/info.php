<?php
$names = ['SCRIPT_NAME', 'PATH_INFO', 'REQUEST_URI', 'QUERY_STRING', 'REMOTE_ADDR',
          'SERVER_SOFTWARE', 'GATEWAY_INTERFACE', 'SCRIPT_FILENAME', 'DOCUMENT_ROOT'];
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>CGI variables</title><link rel="stylesheet" href="/style.css"></head>
<body><main>
<h1>CGI variables</h1>
<table>
<?php foreach ($names as $name): ?>
<tr><th><?= htmlspecialchars($name) ?></th><td><code><?= htmlspecialchars($_SERVER[$name] ?? '') ?></code></td></tr>
<?php endforeach; ?>
</table>
<p>Served by php-cgi pid <?= getmypid() ?>.</p>
</main></body>
</html>
