#!/bin/sh
# A shell CGI script: the request as the script sees it.
printf 'Content-Type: text/plain\r\n\r\n'
echo "Hello from a shell CGI script (pid $$)"
echo "REQUEST_METHOD=$REQUEST_METHOD"
echo "QUERY_STRING=$QUERY_STRING"
echo "PATH_INFO=${PATH_INFO-}"
