//! The HTTP front: listeners, the hyper service, limits and draining.
