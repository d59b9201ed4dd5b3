//! Building the CGI/1.1 variables of one request. (Stub.)
