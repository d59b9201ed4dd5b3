//! Parsing the head of a CGI response. (Stub.)
