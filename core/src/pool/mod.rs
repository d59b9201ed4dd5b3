//! Process pools: spawning, supervising and leasing app instances.
