//! Topics, routes, consumer groups, leases and long-poll consume: one test binary, a module
//! per concern.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod clock;
mod consume;
mod groups;
mod limits;
mod nack;
mod retention;
mod routes;
mod store;
