<?php
// The harness's smallest PHP page: what a gateway and its PHP pool cost per request.
header('Content-Type: text/plain');
echo "Hello, world\n";
