//! `./deploy/bench`: the stack's speed and its filtering as figures anyone can reproduce. It
//! starts the whole stack from release binaries (Redis, PostgreSQL, origin, two edges, nginx),
//! runs the project's load tools and the baselines in the same run (`redis-benchmark`, a bare
//! hyper server, a bare nginx `return 200`), and prints a table for people and one JSON object
//! per line for machines, the last line a summary. Ratios taken in one run, medians of rounds:
//! the machine is shared and noisy.

pub mod baselines;
pub mod compare;
pub mod counts;
pub mod cpu;
pub mod dtm;
pub mod durability;
pub mod failover;
pub mod identity;
pub mod loss;
pub mod measure;
pub mod memory;
pub mod parts;
pub mod phases;
pub mod profile;
pub mod report;
pub mod system;
pub mod world;
