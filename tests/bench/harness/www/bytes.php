<?php
// A response of n bytes (?n=65536): the harness's large-response workloads.
$n = min(max((int)($_GET['n'] ?? 0), 0), 16 << 20);
header('Content-Type: application/octet-stream');
echo str_repeat('x', $n);
