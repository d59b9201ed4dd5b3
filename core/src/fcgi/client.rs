//! The client side of one FastCGI connection.
