#!/usr/bin/env python3
"""A Python CGI script: a form that echoes what was posted."""
import html
import os
import sys
from urllib.parse import parse_qs

length = int(os.environ.get("CONTENT_LENGTH") or 0)
fields = parse_qs(sys.stdin.read(length)) if length else {}
name = fields.get("name", [""])[0]

sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("<!doctype html><title>CGI form</title>\n")
if name:
    sys.stdout.write("<p>Hello, %s.</p>\n" % html.escape(name))
sys.stdout.write('<form method="post"><input name="name"> <button>Send</button></form>\n')
