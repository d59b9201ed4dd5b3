<?php
// Reads the whole request body and answers its length: the harness's POST workload.
header('Content-Type: text/plain');
echo strlen(file_get_contents('php://input')), "\n";
