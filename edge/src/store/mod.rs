//! Where windows live beyond the origin's memory: Redis, for edge nodes.

pub mod redis;
