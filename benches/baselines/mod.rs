//! Peer baselines, faithful to what they stand for, shared by the criterion benches and by
//! the `compare` runner. They live in benches/ so nothing of them ships in the library.

#![allow(dead_code)]

pub mod broadcast;
pub mod seed;
