<?php
// A script of its own: requests for it do not go through the front controller.
header('Content-Type: text/plain');
foreach (['SCRIPT_NAME', 'PATH_INFO', 'REQUEST_URI', 'SERVER_SOFTWARE'] as $name) {
    echo $name, ' = ', $_SERVER[$name] ?? '(unset)', "\n";
}
