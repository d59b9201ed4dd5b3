//! The sans-I/O record decoder. (Stub.)
#[derive(Debug, Default)]
pub struct Decoder {}
