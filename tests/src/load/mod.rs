//! Load tools shared by the benchmark binaries: the closed-loop client.

pub mod closed_loop;
